/**
 * The scenarios every engine must pass with tsrun as its runtime, written
 * once against an Adapter that turns them into the engine's own command
 * lines (test/engines/podman.test.ts, containerd.test.ts, docker.test.ts).  What an
 * engine cannot express is listed by the adapter, with the reason, and
 * shows in the output as a skipped test.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { BuiltPlugins, Test } from '@tapjs/test';
import { readHierarchies } from '../src/lib/cgroup/manager';
import { type RunResult, tempDir, waitFor } from './helpers';
import { cgroupKnobs, findProcess, parentOf, unitProperty, unitsMatching } from './engine-helpers';

/** One container, in engine-neutral terms. */
export interface RunSpec {
  cmd: string[];
  /** Keep stdin open and feed it this. */
  input?: string;
  memory?: number;
  cpus?: number;
  pids?: number;
  readOnly?: boolean;
  user?: string;
  env?: Record<string, string>;
  cwd?: string;
  hostname?: string;
  binds?: Array<{ src: string; dst: string; ro?: boolean }>;
  capDrop?: string[];
  privileged?: boolean;
  pidHost?: boolean;
}

/** podman and docker take the same run flags: a RunSpec in their words. */
export function dockerStyleFlags(s: RunSpec): string[] {
  const f: string[] = [];
  if (s.input !== undefined) f.push('-i');
  if (s.memory) f.push('--memory', String(s.memory));
  if (s.cpus) f.push('--cpus', String(s.cpus));
  if (s.pids) f.push('--pids-limit', String(s.pids));
  if (s.readOnly) f.push('--read-only');
  if (s.user) f.push('--user', s.user);
  for (const [k, v] of Object.entries(s.env ?? {})) f.push('--env', `${k}=${v}`);
  if (s.cwd) f.push('--workdir', s.cwd);
  if (s.hostname) f.push('--hostname', s.hostname);
  for (const b of s.binds ?? []) f.push('--volume', `${b.src}:${b.dst}${b.ro ? ':ro' : ''}`);
  for (const c of s.capDrop ?? []) f.push('--cap-drop', c);
  if (s.privileged) f.push('--privileged');
  if (s.pidHost) f.push('--pid', 'host');
  return f;
}

/** The same for exec. */
export function dockerStyleExecFlags(o: ExecSpec): string[] {
  return [
    ...(o.detach ? ['--detach'] : []),
    ...(o.user ? ['--user', o.user] : []),
    ...Object.entries(o.env ?? {}).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    ...(o.cwd ? ['--workdir', o.cwd] : []),
  ];
}

export interface ExecSpec {
  user?: string;
  env?: Record<string, string>;
  cwd?: string;
  detach?: boolean;
}

export interface Adapter {
  name: string;
  /** Scenario name -> why this engine cannot express it. */
  cannot: Record<string, string>;
  /** Run in the foreground and remove it afterwards. */
  run(spec: RunSpec): RunResult;
  /** The same, on a terminal (-it). */
  runTty(spec: RunSpec): RunResult;
  /** Start detached, named `name`. */
  start(name: string, spec: RunSpec): RunResult;
  exec(name: string, cmd: string[], o?: ExecSpec): RunResult;
  execTty(name: string, cmd: string[]): RunResult;
  top(name: string): RunResult;
  kill(name: string, signal: string): RunResult;
  /**
   * Make the engine send the runtime's `kill --all`: the container is
   * started with `spec` added (engines send it, for one, to containers
   * that share the host's pid namespace), and `signal` is what arrives.
   */
  killAll: { spec: Partial<RunSpec>; send(name: string): RunResult; signal: number };
  /** The command lines the engine sent its runtime so far. */
  sent(): string[];
  pause(name: string): RunResult;
  unpause(name: string): RunResult;
  update(name: string, r: { memory?: number; cpus?: number; pids?: number }): RunResult;
  /** Stop as the engine does (SIGTERM, then SIGKILL after `timeoutSec`). */
  stop(name: string, timeoutSec: number): RunResult;
  /** Wait for it to exit; its exit status. */
  wait(name: string): number;
  remove(name: string): RunResult;
  /** The container's init, as a host pid. */
  pid(name: string): number;
  /** The monitor process engines leave detached execs to (conmon, the shim). */
  monitor: RegExp;
  /** With the systemd cgroup manager: the slice the engine puts its containers in (runc's slice path, a-b.slice nesting). */
  systemdSlice?: string;
}

/** A tap test, as tap's test callbacks receive it. */
type TestApi = Test & BuiltPlugins;

let counter = 0;
const nameFor = (engine: string, what: string): string => `tsrun-${engine}-${what}-${process.pid}-${++counter}`;

const capEff = (out: string): bigint => BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(out)?.[1] ?? '0'}`);
const CAP = { CHOWN: 0n, NET_RAW: 13n, SYS_ADMIN: 21n };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Sleep durations this test process alone uses, so processes are found by their command line while other engines' tests run. */
const unique = (n: number): string => String(1_000_000 + (process.pid % 100_000) * 10 + n);

export async function runScenarios(t: TestApi, a: Adapter): Promise<void> {
  const scenario = async (name: string, fn: (t: TestApi) => Promise<void> | void): Promise<void> => {
    if (a.cannot[name]) {
      t.pass(`${name}: skipped, ${a.name} cannot express it (${a.cannot[name]})`, { skip: true });
      return;
    }
    await t.test(name, async (tt) => {
      await fn(tt);
    });
  };
  /** A detached container, removed at teardown whatever happens. */
  const detached = (t: TestApi, what: string, spec: RunSpec): string => {
    const name = nameFor(a.name, what);
    t.teardown(() => {
      a.remove(name);
    });
    const r = a.start(name, spec);
    t.equal(r.status, 0, `started: ${r.stderr}`);
    return name;
  };
  const long = (cmd = 'sleep 300'): string[] => ['sh', '-c', cmd];

  if (a.systemdSlice) {
    const slice = a.systemdSlice;
    await scenario('each container a transient systemd scope, gone after rm', async (t) => {
      const name = nameFor(a.name, 'scope');
      t.teardown(() => {
        a.remove(name);
      });
      const r = a.start(name, { cmd: long(), memory: 128 << 20, pids: 64 });
      t.equal(r.status, 0, r.stderr);
      const rel = fs
        .readFileSync(`/proc/${a.pid(name)}/cgroup`, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('0::'))!
        .slice(3);
      const unit = path.basename(rel);
      t.match(unit, /^[\w.-]+\.scope$/, `a scope: ${rel}`);
      const nested = slice
        .replace(/\.slice$/, '')
        .split('-')
        .map((_, i, parts) => `${parts.slice(0, i + 1).join('-')}.slice`);
      t.equal(path.dirname(rel), `/${nested.join('/')}`, `in ${slice}`);
      t.equal(unitProperty(unit, 'ActiveState'), 'active');
      t.equal(unitProperty(unit, 'Delegate'), 'yes', 'delegated, as runc asks');
      // systemd's name for it: MemoryLimit where memory is a v1 controller, MemoryMax on v2.
      const v1Memory = /^\d+:memory:/m.test(fs.readFileSync(`/proc/${a.pid(name)}/cgroup`, 'utf8'));
      const memoryProperty = v1Memory ? 'MemoryLimit' : 'MemoryMax';
      t.equal(
        unitProperty(unit, memoryProperty),
        String(128 << 20),
        `the memory limit is a unit property (${memoryProperty})`,
      );
      t.equal(unitProperty(unit, 'TasksMax'), '64', 'and the pids limit');
      t.ok(
        a.sent().some((l) => /(^| )--systemd-cgroup .*\bcreate\b/.test(l)),
        'the engine passed --systemd-cgroup to create',
      );
      t.equal(a.remove(name).status, 0);
      t.ok(await waitFor(() => unitsMatching(unit).length === 0, 10_000), 'after rm: no unit');
      // In every hierarchy: a v1 or hybrid host has the scope's path in each (and none at /sys/fs/cgroup itself).
      t.same(
        readHierarchies()
          .map((h) => path.join(h.mountPoint, rel))
          .filter((d) => fs.existsSync(d)),
        [],
        'after rm: no cgroup in any hierarchy',
      );
    });
  }

  await scenario('run and echo', (t) => {
    const r = a.run({ cmd: ['echo', 'hello from tsrun'] });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout.replace(/\r/g, ''), 'hello from tsrun\n');
  });

  await scenario('exit code', (t) => {
    t.equal(a.run({ cmd: ['sh', '-c', 'exit 3'] }).status, 3);
  });

  await scenario('stdin piped', (t) => {
    const r = a.run({ cmd: ['head', '-n', '1'], input: 'first line\nsecond line\n' });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, 'first line\n');
  });

  await scenario('interactive tty and its exit code', (t) => {
    // A moment before exiting: engines tear the terminal down on exit, and can drop output still in the pty (podman -t does).
    const r = a.runTty({ cmd: ['sh', '-c', 'tty; sleep 0.2; exit 5'] });
    t.equal(r.status, 5, r.stderr);
    t.match(r.stdout, /\/dev\/pts\/\d+/, 'the process has a terminal');
  });

  await scenario('detached run and exec', async (t) => {
    const name = detached(t, 'exec', { cmd: long() });
    const r = a.exec(name, ['sh', '-c', 'echo from exec; exit 4']);
    t.equal(r.status, 4, 'the exec exit code');
    t.match(r.stdout, /from exec/);
    t.equal(
      a.exec(name, ['sh', '-c', `echo started > /tmp/detached; exec sleep ${unique(1)}`], { detach: true }).status,
      0,
      'exec --detach',
    );
    t.ok(
      await waitFor(() => a.exec(name, ['cat', '/tmp/detached']).stdout.includes('started'), 10_000, 100),
      'the detached exec ran',
    );
    const sleeper = findProcess(['sleep', unique(1)]);
    t.ok(sleeper, 'its process is there');
    if (sleeper) t.match(parentOf(sleeper).comm, a.monitor, "and its parent is the engine's monitor, not tsrun");
    const tty = a.execTty(name, ['sh', '-c', 'tty; sleep 0.2; exit 6']);
    t.equal(tty.status, 6, `exec with a tty: ${tty.stderr}`);
    t.match(tty.stdout, /\/dev\/pts\/\d+/);
    const who = a.exec(name, ['sh', '-c', 'id -u; echo "FOO=$FOO"; pwd'], {
      user: '1000',
      env: a.cannot['exec env'] ? undefined : { FOO: 'bar' },
      cwd: '/tmp',
    });
    t.equal(who.status, 0, who.stderr);
    t.equal(
      who.stdout.replace(/\r/g, ''),
      `1000\nFOO=${a.cannot['exec env'] ? '' : 'bar'}\n/tmp\n`,
      'exec with user, env and workdir',
    );
    const top = a.top(name);
    t.equal(top.status, 0, top.stderr);
    t.match(top.stdout, /sleep 300/, "top/ps lists the container's processes");
    t.match(top.stdout, new RegExp(`sleep ${unique(1)}`));
  });

  await scenario('kill with a signal', async (t) => {
    const name = detached(t, 'signal', { cmd: long('trap "exit 42" USR1; while :; do sleep 0.1; done') });
    await sleep(300); // the trap is set
    t.equal(a.kill(name, 'USR1').status, 0);
    t.equal(a.wait(name), 42, 'the handler ran and its exit code is reported');
  });

  await scenario('pause and unpause', async (t) => {
    const dir = tempDir(t, 'tsrun-engine-');
    fs.chmodSync(dir, 0o777);
    const name = detached(t, 'pause', {
      cmd: long('i=0; while :; do i=$((i+1)); echo $i > /w/count; sleep 0.05; done'),
      binds: [{ src: dir, dst: '/w' }],
    });
    const count = (): number => Number(fs.readFileSync(path.join(dir, 'count'), 'utf8') || 0);
    t.ok(await waitFor(() => fs.existsSync(path.join(dir, 'count')) && count() > 2, 10_000, 50), 'it counts');
    t.equal(a.pause(name).status, 0);
    t.ok(cgroupKnobs(a.pid(name)).frozen(), 'the cgroup is frozen');
    const frozenAt = count();
    await sleep(500);
    t.equal(count(), frozenAt, 'nothing runs while paused');
    t.equal(a.unpause(name).status, 0);
    t.ok(await waitFor(() => count() > frozenAt + 2, 10_000, 50), 'it runs again');
  });

  await scenario('update memory, cpus and pids of a running container', (t) => {
    const name = detached(t, 'update', { cmd: long(), memory: 256 << 20 });
    const r = a.update(name, { memory: 64 << 20, cpus: 0.5, pids: a.cannot['update pids'] ? undefined : 77 });
    t.equal(r.status, 0, r.stderr);
    const knobs = cgroupKnobs(a.pid(name));
    t.equal(knobs.memoryLimit(), String(64 << 20));
    t.equal(knobs.cpuQuota().quota, '50000');
    if (!a.cannot['update pids']) t.equal(knobs.pidsMax(), '77');
    else t.pass(`pids: skipped, ${a.cannot['update pids']}`, { skip: true });
  });

  await scenario('stop with SIGTERM handled', (t) => {
    const name = detached(t, 'stop', { cmd: long('trap "exit 0" TERM; while :; do sleep 0.1; done') });
    const started = Date.now();
    const r = a.stop(name, 30);
    t.equal(r.status, 0, r.stderr);
    t.equal(a.wait(name), 0, 'the handler made it exit 0');
    t.ok(Date.now() - started < 15_000, 'without waiting for the SIGKILL timeout');
  });

  await scenario('kill -9 gives 137, and rm', (t) => {
    const name = detached(t, 'kill9', { cmd: long() });
    t.equal(a.kill(name, 'KILL').status, 0);
    t.equal(a.wait(name), 137);
    t.equal(a.remove(name).status, 0, 'rm');
  });

  await scenario('kill-all', async (t) => {
    const name = detached(t, 'killall', {
      cmd: long(`sleep ${unique(2)} & sleep ${unique(3)} & wait`),
      ...a.killAll.spec,
    });
    t.ok(await waitFor(() => !!findProcess(['sleep', unique(3)]), 10_000, 50));
    t.equal(a.killAll.send(name).status, 0);
    t.equal(a.wait(name), 128 + a.killAll.signal);
    t.ok(
      await waitFor(() => !findProcess(['sleep', unique(2)]) && !findProcess(['sleep', unique(3)]), 10_000, 50),
      'every process of the container is gone',
    );
    t.ok(
      a.sent().some((l) => new RegExp(`kill --all \\S+ ${a.killAll.signal}$`).test(l)),
      `the engine sent kill --all with signal ${a.killAll.signal}`,
    );
  });

  await scenario('memory limit and OOM kill', (t) => {
    const r = a.run({
      cmd: ['sh', '-c', 'x=$(head -c 60000000 /dev/zero | tr "\\0" a); echo survived'],
      memory: 16 << 20,
    });
    t.equal(r.status, 137, 'the OOM killer ended it');
    t.notOk(r.stdout.includes('survived'));
  });

  await scenario('pids limit', (t) => {
    const r = a.run({ cmd: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 3 & done 2>&1; wait'], pids: 5 });
    t.match(r.stdout + r.stderr, /can't fork/, 'forking past the limit fails');
  });

  await scenario('cpus', (t) => {
    const name = detached(t, 'cpus', { cmd: long(), cpus: 0.5 });
    t.same(cgroupKnobs(a.pid(name)).cpuQuota(), { quota: '50000', period: '100000' }, 'half a CPU');
  });

  await scenario('read-only rootfs', (t) => {
    const r = a.run({ cmd: ['sh', '-c', 'touch /x 2>&1; echo "tmp ok"'], readOnly: true });
    t.match(r.stdout, /Read-only file system/);
  });

  await scenario('user 1000', (t) => {
    t.equal(a.run({ cmd: ['id', '-u'], user: '1000' }).stdout, '1000\n');
  });

  await scenario('env and workdir', (t) => {
    t.equal(
      a.run({ cmd: ['sh', '-c', 'echo "$FOO"; pwd'], env: { FOO: 'bar baz' }, cwd: '/tmp' }).stdout,
      'bar baz\n/tmp\n',
    );
  });

  await scenario('hostname', (t) => {
    t.equal(a.run({ cmd: ['hostname'], hostname: 'tsrun-box' }).stdout, 'tsrun-box\n');
  });

  await scenario('bind mounts rw and ro', (t) => {
    const rw = tempDir(t, 'tsrun-engine-');
    const ro = tempDir(t, 'tsrun-engine-');
    fs.writeFileSync(path.join(ro, 'f'), 'from the host\n');
    const r = a.run({
      cmd: ['sh', '-c', 'cat /ro/f; echo new > /rw/new; echo x > /ro/y 2>/dev/null || echo "ro refused"'],
      binds: [
        { src: rw, dst: '/rw' },
        { src: ro, dst: '/ro', ro: true },
      ],
    });
    t.equal(r.stdout, 'from the host\nro refused\n');
    t.equal(fs.readFileSync(path.join(rw, 'new'), 'utf8'), 'new\n', 'the write reached the host');
    t.notOk(fs.existsSync(path.join(ro, 'y')));
  });

  await scenario('cap-drop', (t) => {
    const full = capEff(a.run({ cmd: ['grep', 'CapEff', '/proc/self/status'] }).stdout);
    const dropped = capEff(
      a.run({ cmd: ['grep', 'CapEff', '/proc/self/status'], capDrop: ['CAP_CHOWN', 'CAP_NET_RAW'] }).stdout,
    );
    t.ok(full & (1n << CAP.CHOWN), 'CAP_CHOWN by default');
    t.equal(dropped & (1n << CAP.CHOWN), 0n, 'CAP_CHOWN dropped');
    t.equal(dropped & (1n << CAP.NET_RAW), 0n, 'CAP_NET_RAW dropped');
    t.equal(dropped | (1n << CAP.CHOWN) | (1n << CAP.NET_RAW), full | (1n << CAP.NET_RAW), 'nothing else changed');
  });

  await scenario('privileged', (t) => {
    const r = a.run({ cmd: ['sh', '-c', 'grep CapEff /proc/self/status; ls /dev | wc -l'], privileged: true });
    t.equal(r.status, 0, r.stderr);
    t.ok(capEff(r.stdout) & (1n << CAP.SYS_ADMIN), 'CAP_SYS_ADMIN');
    t.ok(Number(r.stdout.trim().split('\n').pop()) > 20, "the host's devices");
  });

  await scenario('pid=host', (t) => {
    const r = a.run({ cmd: ['cat', '/proc/1/comm'], pidHost: true });
    t.equal(r.stdout.trim(), fs.readFileSync('/proc/1/comm', 'utf8').trim(), "pid 1 is the host's");
  });
}
