/**
 * `npm run bench`: every row of the performance issues (7 and 16), tsrun
 * against runc side by side in the same run, paired and alternating, on
 * the busybox bundle running /bin/true.  Both builds of tsrun run in every
 * row: the executable users get (bin/tsrun, compiled with Bun) and tsrun
 * on Node (bin/tsrun-node), so the gain stays visible.  Prints one table
 * per NODE_EXTRA_CA_CERTS setting (as the environment has it, and unset):
 * operation, medians, ratios, target (for the executable), met or not.
 * Installs runc (Debian's) if it is missing.
 *
 *   node dist/bench/perf.js [--rounds N] [--runc PATH] [--containers N]
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  busyboxArchive,
  IMAGE,
  pathsMadeAfter,
  PODMAN_SYSTEM_PATHS,
  podmanStorageFlags,
  podmanTestConf,
  removeCgroupTree,
} from '../test/engine-helpers';
import { PROJECT_ROOT, TSRUN } from '../test/helpers';
import { arg, benchBundle, execVersion, median, paired, type Runtime, timed } from './common';

interface Row {
  operation: string;
  /** The executable (bin/tsrun). */
  tsrun: string;
  /** tsrun on Node (bin/tsrun-node). */
  node: string;
  runc: string;
  ratio: string;
  nodeRatio: string;
  target: string;
  met: boolean | undefined;
}

const TSRUN_NODE = path.join(PROJECT_ROOT, 'bin', 'tsrun-node');
const BUN = path.join(PROJECT_ROOT, 'node_modules', '@oven', 'bun-linux-x64', 'bin', 'bun');

const ms = (x: number): string => `${x.toFixed(1)} ms`;

function ensureRunc(runcPath: string): void {
  if (fs.existsSync(runcPath)) return;
  console.log('bench: installing runc (Debian package)');
  const r = spawnSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null'],
    { stdio: 'inherit' },
  );
  if (r.status !== 0 || !fs.existsSync(runcPath)) throw new Error(`could not install runc at ${runcPath}`);
}

/** A runtime whose processes see `env` (NODE_EXTRA_CA_CERTS as given or removed). */
function runtime(name: string, argv: string[], env: NodeJS.ProcessEnv): Runtime & { env: NodeJS.ProcessEnv } {
  return { name, argv, env };
}

function run(rt: Runtime & { env: NodeJS.ProcessEnv }, root: string, args: string[]): void {
  const r = spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', root, ...args], { stdio: 'ignore', env: rt.env });
  if (r.status !== 0) throw new Error(`${rt.name} ${args.join(' ')} failed with status ${r.status}`);
}

/** Peak RSS (KB) of one command, from GNU time. */
function peakRss(rt: Runtime & { env: NodeJS.ProcessEnv }, root: string, args: string[]): number {
  const out = path.join(os.tmpdir(), `tsrun-bench-rss-${process.pid}`);
  spawnSync('/usr/bin/time', ['-f', '%M', '-o', out, rt.argv[0], ...rt.argv.slice(1), '--root', root, ...args], {
    stdio: 'ignore',
    env: rt.env,
  });
  const kb = Number(fs.readFileSync(out, 'utf8').trim().split('\n').pop());
  fs.rmSync(out, { force: true });
  return kb;
}

/**
 * Resident memory (KB) of a process, its proportional share (Pss), and its
 * anonymous memory: what is its own, apart from the pages of its executable
 * and libraries, which the page cache shares between every process of them.
 */
function memoryOf(pid: number): { rss: number; pss: number; anon: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return {
    rss: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]),
    pss: Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1]),
    anon: Number(/^Anonymous:\s+(\d+)/m.exec(rollup)?.[1]),
  };
}

/** The runtime process's own memory while a foreground `run` waits for its container (sleeping 2 s). */
async function waitingRun(
  rt: Runtime & { env: NodeJS.ProcessEnv },
  root: string,
  bundle: string,
  id: string,
): Promise<{ rss: number; pss: number; anon: number }> {
  const child = spawn(rt.argv[0], [...rt.argv.slice(1), '--root', root, 'run', '-b', bundle, id], {
    stdio: 'ignore',
    env: rt.env,
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await new Promise((r) => setTimeout(r, 1000));
  // bin/tsrun-node is `env -u ... node`: env execs node, so the pid is node's.
  const memory = memoryOf(child.pid!);
  if ((await exited) !== 0) throw new Error(`${rt.name} run ${id} failed`);
  return memory;
}

/** `n` containers one after another, in `streams` parallel streams; total wall time. */
async function many(
  rt: Runtime & { env: NodeJS.ProcessEnv },
  root: string,
  bundle: string,
  n: number,
  streams: number,
  tag: string,
): Promise<number> {
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: streams }, async (_, s) => {
      for (let i = 0; i < n / streams; i++) {
        await new Promise<void>((resolve, reject) => {
          const child = spawn(
            rt.argv[0],
            [...rt.argv.slice(1), '--root', root, 'run', '-b', bundle, `${tag}-${s}-${i}`],
            { stdio: 'ignore', env: rt.env },
          );
          child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${rt.name} run failed: ${code}`))));
        });
      }
    }),
  );
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function table(
  rounds: number,
  runcPath: string,
  containers: number,
  env: NodeJS.ProcessEnv,
  work: string,
): Promise<Row[]> {
  const ts = runtime('tsrun', [TSRUN], env);
  const tn = runtime('node', [TSRUN_NODE], env);
  const rc = runtime('runc', [runcPath], env);
  const all = [ts, tn, rc];
  fs.mkdirSync(path.join(work, 'plain'));
  const bundle = benchBundle(path.join(work, 'plain'));
  const rootOf = (rt: Runtime): string => path.join(work, `root-${rt.name}`);
  const rows: Row[] = [];
  const ratio = (a: number, b: number): string => (a / b).toFixed(2);
  const row = (operation: string, r: Record<string, number>, limit: number, target = `≤ ${limit}× runc`): void => {
    rows.push({
      operation,
      tsrun: ms(r.tsrun),
      node: ms(r.node),
      runc: ms(r.runc),
      ratio: ratio(r.tsrun, r.runc),
      nodeRatio: ratio(r.node, r.runc),
      target,
      met: r.tsrun / r.runc <= limit,
    });
  };
  const pairedAll = (once: (rt: typeof ts, i: number) => void): Record<string, number> =>
    paired(
      rounds,
      all.map((rt) => ({ name: rt.name, once: (i: number) => once(rt, i) })),
    );

  row(
    'run',
    pairedAll((rt, i) => run(rt, rootOf(rt), ['run', '-b', bundle, `run-${i}`])),
    1.1,
  );
  // The floor: each engine's own start-up, before any of tsrun's code runs,
  // against runc's whole run and state: for the executable, an empty program
  // compiled as scripts/compile-exe.js compiles tsrun; for Node, node -e 0.
  const empty = emptyExecutable(work);
  const floor = paired(rounds, [
    {
      name: 'bun',
      once: () => {
        spawnSync(empty, [], { stdio: 'ignore', env });
      },
    },
    {
      name: 'node',
      once: () => {
        spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore', env: { ...env, NODE_EXTRA_CA_CERTS: '' } });
      },
    },
    { name: 'run', once: (i) => run(rc, rootOf(rc), ['run', '-b', bundle, `floor-${i}`]) },
    {
      name: 'state',
      once: () => {
        spawnSync(runcPath, ['--root', rootOf(rc), 'state', 'none'], { stdio: 'ignore', env });
      },
    },
  ]);
  for (const of of ['run', 'state'] as const) {
    rows.push({
      operation: `engine start-up alone (an empty Bun executable, node -e 0) / runc ${of}`,
      tsrun: ms(floor.bun),
      node: ms(floor.node),
      runc: ms(floor[of]),
      ratio: ratio(floor.bun, floor[of]),
      nodeRatio: ratio(floor.node, floor[of]),
      target: 'the floor',
      met: undefined,
    });
  }
  row(
    'create + start + delete',
    pairedAll((rt, i) => {
      run(rt, rootOf(rt), ['create', '-b', bundle, `csd-${i}`]);
      run(rt, rootOf(rt), ['start', `csd-${i}`]);
      // --force: /bin/true may still be running when start has returned (a loaded machine; runc's delete then
      // fails); for a stopped container it costs what delete does.
      run(rt, rootOf(rt), ['delete', '--force', `csd-${i}`]);
    }),
    1.5,
  );

  const lag = startLag(rounds, all, work);
  rows.push({
    operation: "start: its exit after the program's exec (containerd's shim watches for OOM only then)",
    tsrun: ms(lag.tsrun),
    node: ms(lag.node),
    runc: ms(lag.runc),
    ratio: '',
    nodeRatio: '',
    target: '≤ runc + 1 ms',
    met: lag.tsrun <= lag.runc + 1,
  });

  // A running container for exec, state, list and kill.
  const sleeper = path.join(work, 'sleeper');
  fs.mkdirSync(sleeper);
  const sleeperBundle = benchBundle(sleeper, (c) => {
    c.process!.args = ['sleep', '3600'];
  });
  for (const rt of all) run(rt, rootOf(rt), ['run', '-d', '-b', sleeperBundle, 'live']);
  try {
    const proc = path.join(work, 'process.json');
    fs.writeFileSync(
      proc,
      JSON.stringify({ cwd: '/', args: ['/bin/true'], env: ['PATH=/bin'], user: { uid: 0, gid: 0 } }),
    );
    row(
      'exec into a running container',
      pairedAll((rt) => run(rt, rootOf(rt), ['exec', '--process', proc, 'live'])),
      1.2,
    );
    for (const [verb, args] of [
      ['state', ['state', 'live']],
      ['list', ['list']],
      ['kill', ['kill', 'live', 'CONT']],
    ] as const) {
      row(
        verb,
        pairedAll((rt) => run(rt, rootOf(rt), [...args])),
        1.5,
      );
    }
  } finally {
    for (const rt of all) run(rt, rootOf(rt), ['delete', '--force', 'live']);
  }

  for (const streams of [1, 2]) {
    const totals: Record<string, number> = {};
    for (const rt of all) totals[rt.name] = await many(rt, rootOf(rt), bundle, containers, streams, `many${streams}`);
    row(
      streams === 1
        ? `${containers} containers one after another (total)`
        : `${containers} containers in 2 parallel streams (total)`,
      totals,
      1.3,
    );
  }

  const viaPodman = await podmanRun(rounds, all, env, work);
  if (viaPodman) row("podman run --rm IMAGE true, podman's --runtime", viaPodman, 1.1);

  // A container under a 2 MiB memory limit: does it start and run?
  const small = path.join(work, 'small');
  fs.mkdirSync(small);
  const smallBundle = benchBundle(small, (c) => {
    c.linux!.resources = { memory: { limit: 2 << 20 } };
  });
  const runs = (rt: typeof ts): boolean =>
    spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', rootOf(rt), 'run', '-b', smallBundle, 'small'], {
      stdio: 'ignore',
      env,
    }).status === 0;
  const forget = (): void => {
    for (const rt of all)
      spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', rootOf(rt), 'delete', '--force', 'small'], {
        stdio: 'ignore',
        env,
      });
  };
  forget();
  const smallRuns = Object.fromEntries(all.map((rt) => [rt.name, runs(rt)]));
  forget();
  const says = (ok: boolean): string => (ok ? 'runs' : 'fails');
  rows.push({
    operation: 'a container under a 2 MiB memory limit',
    tsrun: says(smallRuns.tsrun),
    node: says(smallRuns.node),
    runc: says(smallRuns.runc),
    ratio: '',
    nodeRatio: '',
    target: 'tsrun runs it',
    met: smallRuns.tsrun,
  });

  // Memory: the runtime process itself, and a created container waiting for start.
  const rss = Object.fromEntries(
    all.map((rt) => [
      rt.name,
      median(Array.from({ length: 5 }, (_, i) => peakRss(rt, rootOf(rt), ['run', '-b', bundle, `rss-${i}`]))),
    ]),
  );
  const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;
  rows.push({
    operation: 'peak RSS of the runtime process (run)',
    tsrun: mib(rss.tsrun),
    node: mib(rss.node),
    runc: mib(rss.runc),
    ratio: ratio(rss.tsrun, rss.runc),
    nodeRatio: ratio(rss.node, rss.runc),
    target: 'report',
    met: undefined,
  });
  const sleeper2 = path.join(work, 'sleeper2');
  fs.mkdirSync(sleeper2);
  const sleeper2Bundle = benchBundle(sleeper2, (c) => {
    c.process!.args = ['sleep', '2'];
  });
  const waiting: Record<string, { rss: number; pss: number; anon: number }> = {};
  for (const rt of all) waiting[rt.name] = await waitingRun(rt, rootOf(rt), sleeper2Bundle, 'waiting');
  const own = (m: { rss: number; anon: number }): string => `${mib(m.rss)} RSS, ${mib(m.anon)} anonymous`;
  rows.push({
    operation: 'the runtime process while a foreground run waits: RSS, and its own (anonymous) part',
    tsrun: own(waiting.tsrun),
    node: own(waiting.node),
    runc: own(waiting.runc),
    ratio: ratio(waiting.tsrun.anon, waiting.runc.anon),
    nodeRatio: ratio(waiting.node.anon, waiting.runc.anon),
    target: 'report',
    met: undefined,
  });
  const parked: Record<string, { rss: number; pss: number; anon: number }> = {};
  for (const rt of all) {
    const pidFile = path.join(work, `${rt.name}.pid`);
    run(rt, rootOf(rt), ['create', '-b', bundle, '--pid-file', pidFile, 'parked']);
    parked[rt.name] = memoryOf(Number(fs.readFileSync(pidFile, 'utf8')));
    run(rt, rootOf(rt), ['delete', '--force', 'parked']);
  }
  const mem = (m: { rss: number; pss: number }): string => `${m.rss} KB RSS, ${m.pss} KB PSS`;
  rows.push({
    operation: 'a created, not started container (its process)',
    tsrun: mem(parked.tsrun),
    node: mem(parked.node),
    runc: mem(parked.runc),
    ratio: ratio(parked.tsrun.pss, parked.runc.pss),
    nodeRatio: ratio(parked.node.pss, parked.runc.pss),
    target: '≤ runc',
    met: parked.tsrun.pss <= parked.runc.pss,
  });

  // seccomp: the second create with a profile reads the compiled filter from the cache.
  const profile = JSON.parse(
    fs.readFileSync(path.join(__dirname, '..', '..', 'spec-fixtures', 'seccomp', 'docker-default.json'), 'utf8'),
  );
  const sec = path.join(work, 'seccomp');
  fs.mkdirSync(sec);
  const secBundle = benchBundle(sec, (c) => {
    c.linux!.seccomp = profile;
  });
  const cached: Record<string, { first: number; second: number }> = {};
  for (const rt of [ts, tn]) {
    const secRoot = path.join(work, `root-seccomp-${rt.name}`);
    const first: number[] = [];
    const second: number[] = [];
    for (let i = 0; i < rounds; i++) {
      fs.rmSync(path.join(secRoot, '.cache'), { recursive: true, force: true });
      first.push(timed(() => run(rt, secRoot, ['create', '-b', secBundle, `a${i}`])));
      second.push(timed(() => run(rt, secRoot, ['create', '-b', secBundle, `b${i}`])));
      run(rt, secRoot, ['delete', '--force', `a${i}`]);
      run(rt, secRoot, ['delete', '--force', `b${i}`]);
    }
    cached[rt.name] = { first: median(first), second: median(second) };
  }
  const pair = (c: { first: number; second: number }): string => `${ms(c.first)} / ${ms(c.second)}`;
  rows.push({
    operation: 'create with a seccomp profile: first / second (cache)',
    tsrun: pair(cached.tsrun),
    node: pair(cached.node),
    runc: '',
    ratio: ratio(cached.tsrun.second, cached.tsrun.first),
    nodeRatio: ratio(cached.node.second, cached.node.first),
    target: 'second faster',
    met: cached.tsrun.second < cached.tsrun.first,
  });
  return rows;
}

/**
 * How long after the container's program begins `start` has ended, as its
 * parent (an engine) sees it: the program (bench/stamp.c, built static)
 * writes its monotonic start time, and the time `start` is reaped is taken
 * on the same clock.  Negative: start ended first.  Medians in ms, paired.
 */
function startLag(
  rounds: number,
  all: Array<Runtime & { env: NodeJS.ProcessEnv }>,
  work: string,
): Record<string, number> {
  const dir = path.join(work, 'lag');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out, { recursive: true });
  const stamp = path.join(dir, 'stamp');
  const cc = spawnSync('musl-gcc', ['-static', '-O2', '-o', stamp, path.join(PROJECT_ROOT, 'bench', 'stamp.c')]);
  if (cc.status !== 0) throw new Error(`musl-gcc bench/stamp.c: ${cc.stderr}`);
  const bundle = benchBundle(dir, (c) => {
    c.process!.args = ['/stamp', '/out/t'];
    c.mounts!.push({ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] });
  });
  fs.copyFileSync(stamp, path.join(bundle, 'rootfs', 'stamp'));
  fs.chmodSync(path.join(bundle, 'rootfs', 'stamp'), 0o755);
  const lags: Record<string, number[]> = Object.fromEntries(all.map((rt) => [rt.name, []]));
  for (let i = 0; i < rounds; i++)
    for (const rt of i % 2 ? [...all].reverse() : all) {
      const root = path.join(work, `root-${rt.name}`);
      const id = `lag-${i}`;
      run(rt, root, ['create', '-b', bundle, id]);
      const r = spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', root, 'start', id], {
        stdio: 'ignore',
        env: rt.env,
      });
      const ended = process.hrtime.bigint();
      if (r.status !== 0) throw new Error(`${rt.name} start ${id} failed with status ${r.status}`);
      const file = path.join(out, 't');
      const written = (): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
      for (let n = 0; n < 500 && !written().endsWith('\n'); n++) spawnSync('sleep', ['0.01']);
      lags[rt.name].push(Number(ended - BigInt(written().trim())) / 1e6);
      fs.rmSync(file);
      run(rt, root, ['delete', '--force', id]);
    }
  return Object.fromEntries(Object.entries(lags).map(([name, xs]) => [name, median(xs)]));
}

/** An executable that does nothing, compiled with Bun as dist/tsrun is: the executable's floor. */
function emptyExecutable(work: string): string {
  const src = path.join(work, 'empty.js');
  const out = path.join(work, 'empty');
  fs.writeFileSync(src, '');
  const r = spawnSync(
    BUN,
    [
      'build',
      '--compile',
      '--bytecode',
      '--minify',
      '--target=bun-linux-x64',
      '--no-compile-autoload-dotenv',
      '--no-compile-autoload-bunfig',
      '--no-compile-autoload-tsconfig',
      src,
      '--outfile',
      out,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`bun build of an empty program failed: ${r.stderr}`);
  return out;
}

/**
 * `podman run --rm --network none IMAGE true` with each runtime as podman's
 * `--runtime`, in private storage, the busybox image loaded once; median
 * ms per runtime, or undefined (with a line saying why) without podman.
 * The runtimes keep their default --root: podman's clean-up runs the
 * runtime's delete with no flags of ours, as it does for users.
 */
async function podmanRun(
  rounds: number,
  runtimes: Array<Runtime & { env: NodeJS.ProcessEnv }>,
  env: NodeJS.ProcessEnv,
  work: string,
): Promise<Record<string, number> | undefined> {
  if (spawnSync('podman', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.log('bench: no podman, so no podman row (scripts/setup.sh installs it)');
    return undefined;
  }
  const dir = path.join(work, 'podman');
  fs.mkdirSync(dir);
  // Below a parent of our own, removed with everything under it at the end.
  const cgroupParent = `/tsrun-bench-podman-${process.pid}`;
  const penv = { ...env, CONTAINERS_CONF: podmanTestConf(path.join(dir, 'containers.conf')) };
  const base = podmanStorageFlags(dir);
  const podman = (args: string[]): void => {
    const r = spawnSync('podman', [...base, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: penv,
      cwd: dir,
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`podman ${args.join(' ')} failed with status ${r.status}: ${r.stderr.trim()}`);
  };
  const removeMadePaths = pathsMadeAfter(PODMAN_SYSTEM_PATHS);
  // The runtimes' default roots, and tsrun's seccomp cache for podman's profile there, if they are new.
  const madeRoots = ['/run/tsrun', '/run/runc'].filter((p) => !fs.existsSync(p));
  try {
    podman(['load', '--input', await busyboxArchive(path.join(dir, 'busybox.tar'))]);
    return paired(
      rounds,
      runtimes.map((rt) => ({
        name: rt.name,
        once: () =>
          podman([
            '--runtime',
            rt.argv[0],
            'run',
            '--rm',
            '--network',
            'none',
            '--cgroup-parent',
            cgroupParent,
            IMAGE,
            'true',
          ]),
      })),
    );
  } finally {
    spawnSync('podman', [...base, 'system', 'reset', '--force'], { stdio: 'ignore', env: penv, cwd: dir });
    removeMadePaths();
    for (const root of madeRoots) {
      fs.rmSync(path.join(root, '.cache'), { recursive: true, force: true });
      try {
        fs.rmdirSync(root);
      } catch {
        /* a container of someone else's is in it now */
      }
    }
    const left = removeCgroupTree(cgroupParent);
    if (left.length) console.log(`bench: cgroups left: ${left.join(' ')}`);
  }
}

function print(rows: Row[]): void {
  const head = ['operation', 'tsrun', 'tsrun on Node', 'runc', 'ratio', 'ratio on Node', 'target', 'met'];
  const cells = rows.map((r) => [
    r.operation,
    r.tsrun,
    r.node,
    r.runc,
    r.ratio,
    r.nodeRatio,
    r.target,
    r.met === undefined ? '' : r.met ? 'yes' : 'no',
  ]);
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const c of cells) console.log(`| ${c.join(' | ')} |`);
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '20'));
  const containers = Number(arg('--containers', '100'));
  const runcPath = arg('--runc', '/usr/sbin/runc');
  ensureRunc(runcPath);
  console.log(
    `tsrun vs ${execVersion(runcPath)}, ${rounds} paired rounds (medians), ${os.cpus().length} cores, kernel ${os.release()}, Node ${process.version}`,
  );
  const settings: Array<[string, NodeJS.ProcessEnv]> = [];
  if (process.env.NODE_EXTRA_CA_CERTS)
    settings.push([`NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS}`, process.env]);
  const unset = { ...process.env };
  delete unset.NODE_EXTRA_CA_CERTS;
  settings.push(['NODE_EXTRA_CA_CERTS unset', unset]);
  for (const [label, env] of settings) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
    try {
      console.log(`\n${label}:\n`);
      print(await table(rounds, runcPath, containers, env, work));
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
