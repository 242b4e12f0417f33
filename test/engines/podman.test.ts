/**
 * podman 4.3 (Debian) with tsrun as its OCI runtime: `--runtime PATH`, in
 * private storage, run and tmp dirs, with a containers.conf of our own (its
 * runtime entry, cgroupfs, and default ulimits within this host's limits).
 * Every scenario of test/engine-scenarios.ts, then what podman does by the runtime's
 * name: named "runc" it adds --log-format=json --log FILE, and a failure
 * still reaches the user with tsrun's reason.  Where systemd is the init
 * (the test/vm --systemd VM), with cgroup_manager = "systemd".
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, type RunResult, runCommand } from '../helpers';
import {
  busyboxArchive,
  CGROUP_MANAGER,
  IMAGE,
  onTty,
  pathsMadeAfter,
  PODMAN_SYSTEM_PATHS,
  podmanStorageFlags,
  podmanTestConf,
  podmanTurn,
  removeCgroupTree,
  runtimeWrapper,
  sentArgv,
  unitsMatching,
} from '../engine-helpers';
import { type Adapter, dockerStyleExecFlags, dockerStyleFlags, type RunSpec, runScenarios } from '../engine-scenarios';

if (!IS_ROOT || runCommand(['podman', '--version']).status !== 0) {
  t.plan(0, 'needs root and podman (scripts/setup.sh installs it)');
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-podman-'));
/**
 * With the systemd cgroup manager podman puts each container in a scope of its default machine.slice (and conmon in
 * a scope of its own); with cgroupfs, under a cgroup parent of this test's own.
 */
const SYSTEMD = CGROUP_MANAGER === 'systemd';
const cgroupParent = `/tsrun-podman-${process.pid}`;
const parentFlags = SYSTEMD ? [] : ['--cgroup-parent', cgroupParent];
const stateRoot = path.join(work, 'tsrun-state');
const argvLog = path.join(work, 'argv.log');
const wrapper = runtimeWrapper(path.join(work, 'bin'), 'tsrun', stateRoot, argvLog);
const conf = podmanTestConf(path.join(work, 'containers.conf'), wrapper, CGROUP_MANAGER);
const ENV = { CONTAINERS_CONF: conf };
// podman and its conmon work in here: conmon writes an "oom" file into its cwd when the OOM killer strikes.
const CWD = work;
const base = ['podman', ...podmanStorageFlags(work)];
const podman = (args: string[], opts: { input?: string; runtime?: string } = {}): RunResult =>
  runCommand([...base, ...(opts.runtime ? ['--runtime', opts.runtime] : []), ...args], {
    env: ENV,
    input: opts.input,
    timeoutMs: 120_000,
    cwd: CWD,
  });

const endTurn = podmanTurn();
const removeMadePaths = pathsMadeAfter(PODMAN_SYSTEM_PATHS);
t.teardown(() => {
  podman(['rm', '--all', '--force', '--time', '0']);
  runCommand([...base, 'system', 'reset', '--force'], { env: ENV, cwd: CWD });
  removeMadePaths();
  endTurn();
  fs.rmSync(work, { recursive: true, force: true });
  const left = removeCgroupTree(cgroupParent);
  if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
  const units = SYSTEMD ? unitsMatching('libpod-*') : [];
  if (units.length) throw new Error(`systemd units left: ${units.join(' ')}`);
});

const flags = (s: RunSpec): string[] => ['--network', 'none', ...parentFlags, ...dockerStyleFlags(s)];

const adapter: Adapter = {
  name: 'podman',
  cannot: { 'update pids': 'podman 4.3 update has no --pids-limit' },
  monitor: /^conmon$/,
  systemdSlice: SYSTEMD ? 'machine.slice' : undefined,
  run: (s) => podman(['run', '--rm', ...flags(s), IMAGE, ...s.cmd], { input: s.input }),
  runTty: (s) => onTty([...base, 'run', '--rm', '-it', ...flags(s), IMAGE, ...s.cmd], ENV, undefined, CWD),
  start: (name, s) => podman(['run', '-d', '--name', name, ...flags(s), IMAGE, ...s.cmd]),
  exec: (name, cmd, o = {}) => podman(['exec', ...dockerStyleExecFlags(o), name, ...cmd]),
  execTty: (name, cmd) => onTty([...base, 'exec', '-it', name, ...cmd], ENV, undefined, CWD),
  top: (name) => podman(['top', name]),
  kill: (name, signal) => podman(['kill', '--signal', signal, name]),
  // podman stops a container in the host's pid namespace with kill --all (SIGTERM here, as its processes are no pid 1).
  killAll: { spec: { pidHost: true }, send: (name) => podman(['stop', '--time', '10', name]), signal: 15 },
  sent: () => sentArgv(argvLog),
  pause: (name) => podman(['pause', name]),
  unpause: (name) => podman(['unpause', name]),
  update: (name, r) =>
    podman([
      'update',
      ...(r.memory ? ['--memory', String(r.memory)] : []),
      ...(r.cpus ? ['--cpus', String(r.cpus)] : []),
      name,
    ]),
  stop: (name, timeout) => podman(['stop', '--time', String(timeout), name]),
  wait: (name) => Number(podman(['wait', name]).stdout.trim()),
  remove: (name) => podman(['rm', '--force', '--time', '0', name]),
  pid: (name) => Number(podman(['inspect', '--format', '{{.State.Pid}}', name]).stdout.trim()),
};

t.before(async () => {
  const archive = await busyboxArchive(path.join(work, 'busybox.tar'));
  const r = podman(['load', '--input', archive]);
  if (r.status !== 0) throw new Error(`podman load: ${r.stderr}`);
});

t.test('podman runs its containers on tsrun', async (t) => {
  await runScenarios(t, adapter);
  t.ok(
    sentArgv(argvLog).some((l) => /^(--systemd-cgroup )?create --bundle \S+ --pid-file \S+ /.test(l)),
    "podman drove tsrun (through containers.conf's runtime entry)",
  );
});

/**
 * An RLIMIT_NOFILE the kernel refuses: above this host's hard limit where CAP_SYS_RESOURCE is missing (this host's
 * bounding set lacks it), else above fs.nr_open (the VMs).
 */
const refusedNofile = ((): number => {
  const capEff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`);
  const CAP_SYS_RESOURCE = 24n;
  if (capEff & (1n << CAP_SYS_RESOURCE)) return Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8')) + 1;
  const hard = /Max open files\s+\d+\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'))![1];
  return Number(hard) + 10_000;
})();

t.test('named "runc", tsrun gets --log-format=json --log FILE, and errors still reach the user', async (t) => {
  const log = path.join(work, 'argv-runc.log');
  const asRunc = runtimeWrapper(path.join(work, 'as-runc'), 'runc', stateRoot, log);
  const ok = podman(['run', '--rm', '--network', 'none', ...parentFlags, IMAGE, 'echo', 'as runc'], {
    runtime: asRunc,
  });
  t.equal(ok.stdout, 'as runc\n', ok.stderr);
  t.match(
    sentArgv(log).find((l) => l.includes(' create ')),
    /^(--systemd-cgroup )?--log-format=json --log \S+ (--systemd-cgroup )?create --bundle /,
    'the flags podman gives runc',
  );
  t.notOk(
    sentArgv(argvLog).some((l) => l.includes('--log-format')),
    'and not to a runtime named tsrun',
  );
  for (const runtime of [asRunc, wrapper]) {
    // A limit the kernel refuses: tsrun says so, and podman says why.
    const bad = podman(
      [
        'run',
        '--rm',
        '--network',
        'none',
        ...parentFlags,
        '--ulimit',
        `nofile=${refusedNofile}:${refusedNofile}`,
        '--ulimit',
        'nproc=4096:4096',
        IMAGE,
        'true',
      ],
      { runtime },
    );
    t.not(bad.status, 0);
    t.match(
      bad.stderr,
      new RegExp(
        `process\\.rlimits\\[\\d\\]: set RLIMIT_NOFILE to ${refusedNofile}/${refusedNofile}: operation not permitted`,
      ),
      `${path.basename(runtime)}: tsrun's reason in podman's error`,
    );
  }
});
