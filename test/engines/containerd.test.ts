/**
 * containerd 1.6 (Debian) and ctr, through the io.containerd.runc.v2 shim
 * with tsrun as its runc binary: the path Kubernetes takes (a RuntimeClass
 * names a CRI runtime whose options set the shim's BinaryName; ctr's
 * --runc-binary hands the shim that same option; test/engines/cri.test.ts
 * goes through the CRI plugin itself, as a kubelet does).  containerd
 * runs under tini -s with its own root, state and socket, the images in a
 * namespace of this test's own.  Every scenario of test/engine-scenarios.ts that ctr
 * can express (user, hostname and the pids limit through `ctr run
 * --config`, as ctr 1.6 has no flags for them), and a create failure shows
 * tsrun's reason in ctr's error (the shim reads it from log.json).  Where
 * systemd is the init (scripts/test.sh runs this file in the test/vm
 * --systemd VM too), with the shim's SystemdCgroup option: each container
 * a scope in system.slice.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { FIXTURE_ROOTFS, IS_ROOT, type RunResult, runCommand, waitFor } from '../helpers';
import {
  busyboxArchive,
  CGROUP_MANAGER,
  Daemon,
  IMAGE,
  onTty,
  pathsMadeAfter,
  processesWith,
  removeCgroupTree,
  runtimeWrapper,
  sentArgv,
  unitsMatching,
} from '../engine-helpers';
import { type Adapter, type RunSpec, runScenarios } from '../engine-scenarios';

if (!IS_ROOT || runCommand(['containerd', '--version']).status !== 0) {
  t.plan(0, 'needs root and containerd (scripts/setup.sh installs it)');
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-containerd-'));
const sock = path.join(work, 'containerd.sock');
const ns = `tsrun-test-${process.pid}`;
const argvLog = path.join(work, 'argv.log');
const wrapper = runtimeWrapper(path.join(work, 'bin'), 'tsrun', path.join(work, 'tsrun-state'), argvLog);
const fifoDir = path.join(work, 'fifo');
const runcRoot = path.join(work, 'runc-root');
const config = path.join(work, 'config.toml');
fs.writeFileSync(
  config,
  `version = 2
root = "${work}/root"
state = "${work}/state"

[grpc]
  address = "${sock}"

[ttrpc]
  address = "${sock}.ttrpc"
`,
);

const ctr = (args: string[], input?: string): RunResult =>
  runCommand(['ctr', '--address', sock, '--namespace', ns, ...args], { input, timeoutMs: 120_000 });
/**
 * With the systemd cgroup manager, ctr's --runc-systemd-cgroup sets the shim's runc option SystemdCgroup, the one a
 * node's CRI config sets (`SystemdCgroup = true`), and each container's cgroupsPath is slice:prefix:name, as the CRI
 * plugin makes it.
 */
const SYSTEMD = CGROUP_MANAGER === 'systemd';
const runtimeFlags = [
  '--runc-binary',
  wrapper,
  '--runc-root',
  runcRoot,
  '--fifo-dir',
  fifoDir,
  ...(SYSTEMD ? ['--runc-systemd-cgroup'] : []),
];
const cgroupOf = (id: string): string => (SYSTEMD ? `system.slice:${ns}:${id}` : `/${ns}/${id}`);
let daemon: Daemon | undefined;
let seq = 0;

const removeMadePaths = pathsMadeAfter([
  '/run/containerd/s',
  '/run/containerd/fifo',
  '/run/containerd/runc',
  '/run/containerd',
]);
t.teardown(async () => {
  for (const id of ctr(['containers', 'ls', '--quiet']).stdout.split('\n').filter(Boolean)) adapter.remove(id);
  ctr(['images', 'rm', IMAGE]);
  await daemon?.stop();
  // Shims outlive containerd by design; any of ours still there is ended by pid.
  for (const pid of processesWith(sock)) process.kill(pid, 'SIGKILL');
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(work + '/')) runCommand(['umount', '-l', mp]);
  }
  removeMadePaths();
  fs.rmSync(work, { recursive: true, force: true });
  const left = removeCgroupTree(`/${ns}`);
  if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
  const units = SYSTEMD ? unitsMatching(`${ns}-*`) : [];
  if (units.length) throw new Error(`systemd units left: ${units.join(' ')}`);
});

/**
 * ctr 1.6 has no --user, --hostname or --pids-limit: those take a full
 * spec (`ctr oci spec`, changed).  With --config ctr takes no image: the
 * spec's root is a copy of the image's tree.
 */
function specFile(id: string, s: RunSpec): string | undefined {
  if (!s.user && !s.hostname && !s.pids) return undefined;
  const rootfs = path.join(work, `${id}-rootfs`);
  runCommand(['cp', '-a', FIXTURE_ROOTFS, rootfs]);
  const spec = JSON.parse(runCommand(['ctr', 'oci', 'spec']).stdout);
  spec.root = { path: rootfs, readonly: false };
  spec.process.args = s.cmd;
  spec.process.env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  if (s.user) spec.process.user = { uid: Number(s.user), gid: Number(s.user) };
  if (s.hostname) spec.hostname = s.hostname;
  if (s.pids) spec.linux.resources = { ...spec.linux.resources, pids: { limit: s.pids } };
  // With --config, ctr's own --memory-limit does not apply.
  if (s.memory) spec.linux.resources = { ...spec.linux.resources, memory: { limit: s.memory } };
  spec.linux.cgroupsPath = cgroupOf(id);
  const file = path.join(work, `${id}.json`);
  fs.writeFileSync(file, JSON.stringify(spec));
  return file;
}

function runArgs(id: string, s: RunSpec): string[] {
  const file = specFile(id, s);
  if (file) return [...runtimeFlags, '--cgroup', cgroupOf(id), '--config', file, id];
  const f = [...runtimeFlags, '--cgroup', cgroupOf(id)];
  if (s.memory) f.push('--memory-limit', String(s.memory));
  if (s.cpus) f.push('--cpus', String(s.cpus));
  if (s.readOnly) f.push('--read-only');
  for (const [k, v] of Object.entries(s.env ?? {})) f.push('--env', `${k}=${v}`);
  if (s.cwd) f.push('--cwd', s.cwd);
  for (const b of s.binds ?? [])
    f.push('--mount', `type=bind,src=${b.src},dst=${b.dst},options=rbind:${b.ro ? 'ro' : 'rw'}`);
  for (const c of s.capDrop ?? []) f.push('--cap-drop', c);
  if (s.privileged) f.push('--privileged');
  // The host's pid namespace, through a process of ours: this host's pid 1 lets nobody open its namespaces.
  if (s.pidHost) f.push('--with-ns', `pid:/proc/${process.pid}/ns/pid`);
  return [...f, IMAGE, id, ...s.cmd];
}

/** `ctr task delete` reports a non-zero exit as "exit with non-zero exit code N". */
function reap(name: string): number {
  const r = ctr(['task', 'delete', name]);
  const m = /exit code (\d+)/.exec(r.stderr);
  return m ? Number(m[1]) : 0;
}

const adapter: Adapter = {
  name: 'containerd',
  cannot: {
    'update memory, cpus and pids of a running container': 'ctr 1.6 has no task update',
    'exec env': 'ctr task exec has no --env',
  },
  monitor: /^containerd-shim/,
  systemdSlice: SYSTEMD ? 'system.slice' : undefined,
  run: (s) => {
    const id = `run-${++seq}`;
    return ctr(['run', '--rm', ...runArgs(id, s)], s.input);
  },
  runTty: (s) =>
    onTty(['ctr', '--address', sock, '--namespace', ns, 'run', '--rm', '--tty', ...runArgs(`tty-${++seq}`, s)]),
  start: (name, s) => ctr(['run', '--detach', ...runArgs(name, s)]),
  exec: (name, cmd, o = {}) =>
    ctr([
      'task',
      'exec',
      '--exec-id',
      `e${++seq}`,
      '--fifo-dir',
      fifoDir,
      ...(o.detach ? ['--detach'] : []),
      ...(o.user ? ['--user', o.user] : []),
      ...(o.cwd ? ['--cwd', o.cwd] : []),
      name,
      ...cmd,
    ]),
  execTty: (name, cmd) =>
    onTty([
      'ctr',
      '--address',
      sock,
      '--namespace',
      ns,
      'task',
      'exec',
      '--tty',
      '--exec-id',
      `e${++seq}`,
      '--fifo-dir',
      fifoDir,
      name,
      ...cmd,
    ]),
  top: (name) => {
    // ctr task ps lists pids (from the runtime's ps --format json); the host's /proc gives their command lines.
    const r = ctr(['task', 'ps', name]);
    const pids = r.stdout
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/)[0])
      .filter(Boolean);
    return {
      ...r,
      stdout: pids.map((p) => `${p} ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`).join('\n'),
    };
  },
  kill: (name, signal) => ctr(['task', 'kill', '--signal', `SIG${signal}`, name]),
  killAll: { spec: {}, send: (name) => ctr(['task', 'kill', '--all', '--signal', 'SIGKILL', name]), signal: 9 },
  sent: () => sentArgv(argvLog),
  pause: (name) => ctr(['task', 'pause', name]),
  unpause: (name) => ctr(['task', 'resume', name]),
  update: () => {
    throw new Error('ctr has no task update');
  },
  // ctr has no stop: what an engine's stop does first, SIGTERM, then the wait.
  stop: (name) => ctr(['task', 'kill', '--signal', 'SIGTERM', name]),
  wait: (name) => {
    const stopped = (): boolean =>
      /\bSTOPPED\b/.test(
        ctr(['task', 'ls'])
          .stdout.split('\n')
          .find((l) => l.startsWith(`${name} `)) ?? '',
      );
    if (!stopped() && !waitForSync(stopped, 30_000)) return -1;
    return reap(name);
  },
  remove: (name) => {
    ctr(['task', 'delete', '--force', name]);
    return ctr(['containers', 'rm', name]);
  },
  pid: (name) =>
    Number(
      ctr(['task', 'ls'])
        .stdout.split('\n')
        .find((l) => l.startsWith(`${name} `))
        ?.split(/\s+/)[1],
    ),
};

function waitForSync(pred: () => boolean, timeoutMs: number): boolean {
  const end = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < end) {
    if (pred()) return true;
    Atomics.wait(pause, 0, 0, 100);
  }
  return pred();
}

t.before(async () => {
  daemon = await Daemon.start(
    'containerd',
    ['containerd', '--config', config],
    path.join(work, 'containerd.log'),
    () => fs.existsSync(sock) && ctr(['version']).status === 0,
  );
  const archive = await busyboxArchive(path.join(work, 'busybox.tar'));
  const r = ctr(['images', 'import', archive]);
  if (r.status !== 0) throw new Error(`ctr images import: ${r.stderr}`);
});

t.test('containerd runs its containers on tsrun', async (t) => {
  await runScenarios(t, adapter);
  t.ok(
    sentArgv(argvLog).every((l) => l.startsWith(`--root ${runcRoot}/${ns} --log `) && l.includes('--log-format json')),
    'the shim passed --root, --log and --log-format json every time',
  );
});

t.test("a create failure shows tsrun's reason in ctr's error (the shim reads log.json)", async (t) => {
  const spec = JSON.parse(runCommand(['ctr', 'oci', 'spec']).stdout);
  spec.process.args = ['true'];
  spec.linux.cgroupsPath = cgroupOf('broken');
  spec.mounts.push({ destination: '/mnt', type: 'nosuchfs', source: 'none' });
  spec.root = { path: path.join(work, 'broken-rootfs'), readonly: false };
  runCommand(['cp', '-a', FIXTURE_ROOTFS, spec.root.path]);
  const file = path.join(work, 'broken.json');
  fs.writeFileSync(file, JSON.stringify(spec));
  const r = ctr(['run', '--rm', ...runtimeFlags, '--cgroup', cgroupOf('broken'), '--config', file, 'broken']);
  t.not(r.status, 0);
  t.match(r.stderr, /mounts\[\d+\]: mount none \(nosuchfs\) on rootfs\/mnt: no such device/, r.stderr);
  ctr(['containers', 'rm', 'broken']);
  t.ok(await waitFor(() => !fs.existsSync(path.join(runcRoot, ns, 'broken')), 5_000), 'and tsrun left no state');
});
