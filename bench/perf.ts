/**
 * `npm run bench`: every row of the performance issue, tsrun against runc
 * side by side in the same run, paired and alternating, on the busybox
 * bundle running /bin/true.  Prints one table per NODE_EXTRA_CA_CERTS
 * setting (as the environment has it, and unset): operation, medians,
 * ratio, target, met or not.  Installs runc (Debian's) if it is missing.
 *
 *   node dist/bench/perf.js [--rounds N] [--runc PATH] [--containers N]
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TSRUN } from '../test/helpers';
import { arg, benchBundle, execVersion, median, must, paired, Runtime, timed } from './common';

interface Row {
  operation: string;
  tsrun: string;
  runc: string;
  ratio: string;
  target: string;
  met: boolean | undefined;
}

const ms = (x: number): string => `${x.toFixed(1)} ms`;

function ensureRunc(runcPath: string): void {
  if (fs.existsSync(runcPath)) return;
  console.log('bench: installing runc (Debian package)');
  const r = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null'], { stdio: 'inherit' });
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
  spawnSync('/usr/bin/time', ['-f', '%M', '-o', out, rt.argv[0], ...rt.argv.slice(1), '--root', root, ...args], { stdio: 'ignore', env: rt.env });
  const kb = Number(fs.readFileSync(out, 'utf8').trim().split('\n').pop());
  fs.rmSync(out, { force: true });
  return kb;
}

/** Resident memory (KB) of a process, and its proportional share (Pss). */
function memoryOf(pid: number): { rss: number; pss: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rss: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]), pss: Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1]) };
}

/** `n` containers one after another, in `streams` parallel streams; total wall time. */
async function many(rt: Runtime & { env: NodeJS.ProcessEnv }, root: string, bundle: string, n: number, streams: number, tag: string): Promise<number> {
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: streams }, async (_, s) => {
    for (let i = 0; i < n / streams; i++) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(rt.argv[0], [...rt.argv.slice(1), '--root', root, 'run', '-b', bundle, `${tag}-${s}-${i}`], { stdio: 'ignore', env: rt.env });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${rt.name} run failed: ${code}`))));
      });
    }
  }));
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function table(rounds: number, runcPath: string, containers: number, env: NodeJS.ProcessEnv, work: string): Promise<Row[]> {
  const ts = runtime('tsrun', [TSRUN], env);
  const rc = runtime('runc', [runcPath], env);
  const both = [ts, rc];
  fs.mkdirSync(path.join(work, 'plain'));
  const bundle = benchBundle(path.join(work, 'plain'));
  const rootOf = (rt: Runtime): string => path.join(work, `root-${rt.name}`);
  const rows: Row[] = [];
  const row = (operation: string, t: number, r: number, limit: number, target = `≤ ${limit}× runc`): void => {
    rows.push({ operation, tsrun: ms(t), runc: ms(r), ratio: (t / r).toFixed(2), target, met: t / r <= limit });
  };
  const pairedBoth = (once: (rt: typeof ts, i: number) => void): Record<string, number> =>
    paired(rounds, both.map((rt) => ({ name: rt.name, once: (i: number) => once(rt, i) })));

  const r1 = pairedBoth((rt, i) => run(rt, rootOf(rt), ['run', '-b', bundle, `run-${i}`]));
  row('run', r1.tsrun, r1.runc, 1.2);
  // The floor: Node's own start-up, before any of tsrun's code runs, against runc's whole run and state.
  const floor = paired(rounds, [
    { name: 'node', once: () => { spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore', env: { ...env, NODE_EXTRA_CA_CERTS: '' } }); } },
    { name: 'run', once: (i) => run(rc, rootOf(rc), ['run', '-b', bundle, `floor-${i}`]) },
    { name: 'state', once: () => { spawnSync(runcPath, ['--root', rootOf(rc), 'state', 'none'], { stdio: 'ignore', env }); } },
  ]);
  rows.push({ operation: 'Node start-up alone (node -e 0) / runc run', tsrun: ms(floor.node), runc: ms(floor.run), ratio: (floor.node / floor.run).toFixed(2), target: 'the floor', met: undefined });
  rows.push({ operation: 'Node start-up alone (node -e 0) / runc state', tsrun: ms(floor.node), runc: ms(floor.state), ratio: (floor.node / floor.state).toFixed(2), target: 'the floor', met: undefined });
  const r2 = pairedBoth((rt, i) => {
    run(rt, rootOf(rt), ['create', '-b', bundle, `csd-${i}`]);
    run(rt, rootOf(rt), ['start', `csd-${i}`]);
    run(rt, rootOf(rt), ['delete', `csd-${i}`]);
  });
  row('create + start + delete', r2.tsrun, r2.runc, 2.0);

  // A running container for exec, state, list and kill.
  const sleeper = path.join(work, 'sleeper');
  fs.mkdirSync(sleeper);
  const sleeperBundle = benchBundle(sleeper, (c) => { c.process!.args = ['sleep', '3600']; });
  for (const rt of both) run(rt, rootOf(rt), ['run', '-d', '-b', sleeperBundle, 'live']);
  try {
    const proc = path.join(work, 'process.json');
    fs.writeFileSync(proc, JSON.stringify({ cwd: '/', args: ['/bin/true'], env: ['PATH=/bin'], user: { uid: 0, gid: 0 } }));
    const r3 = pairedBoth((rt) => run(rt, rootOf(rt), ['exec', '--process', proc, 'live']));
    row('exec into a running container', r3.tsrun, r3.runc, 1.2);
    for (const [verb, args] of [['state', ['state', 'live']], ['list', ['list']], ['kill', ['kill', 'live', 'CONT']]] as const) {
      const r = pairedBoth((rt) => run(rt, rootOf(rt), [...args]));
      row(verb, r.tsrun, r.runc, 1.5);
    }
  } finally {
    for (const rt of both) run(rt, rootOf(rt), ['delete', '--force', 'live']);
  }

  const seqT = await many(ts, rootOf(ts), bundle, containers, 1, 'seq');
  const seqR = await many(rc, rootOf(rc), bundle, containers, 1, 'seq');
  row(`${containers} containers one after another (total)`, seqT, seqR, 1.3);
  const parT = await many(ts, rootOf(ts), bundle, containers, 2, 'par');
  const parR = await many(rc, rootOf(rc), bundle, containers, 2, 'par');
  row(`${containers} containers in 2 parallel streams (total)`, parT, parR, 1.3);

  // A container under a 2 MiB memory limit: does it start and run?
  const small = path.join(work, 'small');
  fs.mkdirSync(small);
  const smallBundle = benchBundle(small, (c) => { c.linux!.resources = { memory: { limit: 2 << 20 } }; });
  const runs = (rt: typeof ts): boolean => spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', rootOf(rt), 'run', '-b', smallBundle, 'small'], { stdio: 'ignore', env }).status === 0;
  for (const rt of both) spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', rootOf(rt), 'delete', '--force', 'small'], { stdio: 'ignore', env });
  const smallT = runs(ts);
  const smallR = runs(rc);
  for (const rt of both) spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', rootOf(rt), 'delete', '--force', 'small'], { stdio: 'ignore', env });
  rows.push({ operation: 'a container under a 2 MiB memory limit', tsrun: smallT ? 'runs' : 'fails', runc: smallR ? 'runs' : 'fails', ratio: '', target: 'tsrun runs it', met: smallT });

  // Memory: the runtime process itself, and a created container waiting for start.
  const rssT = median(Array.from({ length: 5 }, (_, i) => peakRss(ts, rootOf(ts), ['run', '-b', bundle, `rss-${i}`])));
  const rssR = median(Array.from({ length: 5 }, (_, i) => peakRss(rc, rootOf(rc), ['run', '-b', bundle, `rss-${i}`])));
  rows.push({ operation: 'peak RSS of the runtime process (run)', tsrun: `${(rssT / 1024).toFixed(1)} MiB`, runc: `${(rssR / 1024).toFixed(1)} MiB`, ratio: (rssT / rssR).toFixed(2), target: 'report', met: undefined });
  const parked: Record<string, { rss: number; pss: number }> = {};
  for (const rt of both) {
    const pidFile = path.join(work, `${rt.name}.pid`);
    run(rt, rootOf(rt), ['create', '-b', bundle, '--pid-file', pidFile, 'parked']);
    parked[rt.name] = memoryOf(Number(fs.readFileSync(pidFile, 'utf8')));
    run(rt, rootOf(rt), ['delete', '--force', 'parked']);
  }
  rows.push({
    operation: 'a created, not started container (its process)',
    tsrun: `${parked.tsrun.rss} KB RSS, ${parked.tsrun.pss} KB PSS`, runc: `${parked.runc.rss} KB RSS, ${parked.runc.pss} KB PSS`,
    ratio: (parked.tsrun.pss / parked.runc.pss).toFixed(2), target: '≤ runc', met: parked.tsrun.pss <= parked.runc.pss,
  });

  // seccomp: the second create with a profile reads the compiled filter from the cache.
  const profile = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'spec-fixtures', 'seccomp', 'docker-default.json'), 'utf8'));
  const sec = path.join(work, 'seccomp');
  fs.mkdirSync(sec);
  const secBundle = benchBundle(sec, (c) => { c.linux!.seccomp = profile; });
  const secRoot = path.join(work, 'root-seccomp');
  const first: number[] = [];
  const second: number[] = [];
  for (let i = 0; i < rounds; i++) {
    fs.rmSync(path.join(secRoot, '.cache'), { recursive: true, force: true });
    first.push(timed(() => run(ts, secRoot, ['create', '-b', secBundle, `a${i}`])));
    second.push(timed(() => run(ts, secRoot, ['create', '-b', secBundle, `b${i}`])));
    run(ts, secRoot, ['delete', '--force', `a${i}`]);
    run(ts, secRoot, ['delete', '--force', `b${i}`]);
  }
  const f = median(first);
  const s = median(second);
  rows.push({ operation: 'create with a seccomp profile: first / second (cache)', tsrun: `${ms(f)} / ${ms(s)}`, runc: '', ratio: (s / f).toFixed(2), target: 'second faster', met: s < f });
  return rows;
}

function print(rows: Row[]): void {
  const head = ['operation', 'tsrun', 'runc', 'ratio', 'target', 'met'];
  const cells = rows.map((r) => [r.operation, r.tsrun, r.runc, r.ratio, r.target, r.met === undefined ? '' : r.met ? 'yes' : 'no']);
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const c of cells) console.log(`| ${c.join(' | ')} |`);
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '20'));
  const containers = Number(arg('--containers', '100'));
  const runcPath = arg('--runc', '/usr/sbin/runc');
  ensureRunc(runcPath);
  console.log(`tsrun vs ${execVersion(runcPath)}, ${rounds} paired rounds (medians), ${os.cpus().length} cores, kernel ${os.release()}, Node ${process.version}`);
  const settings: Array<[string, NodeJS.ProcessEnv]> = [];
  if (process.env.NODE_EXTRA_CA_CERTS) settings.push([`NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS}`, process.env]);
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
