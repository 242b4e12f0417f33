/**
 * dockerd 20.10 (Debian's docker.io) with tsrun added as a runtime in
 * daemon.json ("runtimes"), through its own containerd and the runc v2
 * shim.  dockerd runs under tini -s with a private data root, exec root,
 * socket and cgroup parent, and no networking of its own (no iptables, no
 * bridge).  Every scenario of test/engine-scenarios.ts, with `--runtime tsrun`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, type RunResult, runCommand } from '../helpers';
import {
  busyboxArchive,
  Daemon,
  IMAGE,
  onTty,
  pathsMadeAfter,
  processesWith,
  removeCgroupTree,
  runtimeWrapper,
  sentArgv,
} from '../engine-helpers';
import { type Adapter, dockerStyleExecFlags, dockerStyleFlags, type RunSpec, runScenarios } from '../engine-scenarios';

const DOCKER = '/usr/bin/docker'; // Debian's client, whatever else PATH holds
if (!IS_ROOT || runCommand(['dockerd', '--version']).status !== 0 || !fs.existsSync(DOCKER)) {
  t.plan(0, 'needs root and docker.io (scripts/setup.sh installs it)');
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-docker-'));
const sock = path.join(work, 'docker.sock');
const execRoot = path.join(work, 'exec');
const cgroupParent = `/tsrun-docker-${process.pid}`;
const argvLog = path.join(work, 'argv.log');
const wrapper = runtimeWrapper(path.join(work, 'bin'), 'tsrun', path.join(work, 'tsrun-state'), argvLog);
const daemonJson = path.join(work, 'daemon.json');
fs.writeFileSync(
  daemonJson,
  JSON.stringify({ runtimes: { tsrun: { path: wrapper } }, 'cgroup-parent': cgroupParent }, null, 2),
);

const docker = (args: string[], input?: string): RunResult =>
  runCommand([DOCKER, '-H', `unix://${sock}`, ...args], { input, timeoutMs: 120_000 });
let daemon: Daemon | undefined;

const removeMadePaths = pathsMadeAfter([
  '/run/containerd/s',
  '/run/containerd',
  '/run/docker/plugins',
  '/run/docker',
  '/etc/docker/key.json',
]);
t.teardown(async () => {
  const ids = docker(['ps', '--all', '--quiet']).stdout.split('\n').filter(Boolean);
  if (ids.length) docker(['rm', '--force', ...ids]);
  docker(['rmi', '--force', IMAGE]);
  await daemon?.stop();
  for (const pid of processesWith(execRoot)) process.kill(pid, 'SIGKILL'); // shims left by a dockerd that died
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(work + '/')) runCommand(['umount', '-l', mp]);
  }
  removeMadePaths();
  fs.rmSync(work, { recursive: true, force: true });
  const left = removeCgroupTree(cgroupParent);
  if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
});

const flags = (s: RunSpec): string[] => [...['--runtime', 'tsrun', '--network', 'none'], ...dockerStyleFlags(s)];

const adapter: Adapter = {
  name: 'docker',
  cannot: {},
  monitor: /^containerd-shim/,
  run: (s) => docker(['run', '--rm', ...flags(s), IMAGE, ...s.cmd], s.input),
  runTty: (s) => onTty([DOCKER, '-H', `unix://${sock}`, 'run', '--rm', '-it', ...flags(s), IMAGE, ...s.cmd]),
  start: (name, s) => docker(['run', '--detach', '--name', name, ...flags(s), IMAGE, ...s.cmd]),
  exec: (name, cmd, o = {}) => docker(['exec', ...dockerStyleExecFlags(o), name, ...cmd]),
  execTty: (name, cmd) => onTty([DOCKER, '-H', `unix://${sock}`, 'exec', '-it', name, ...cmd]),
  top: (name) => docker(['top', name]),
  kill: (name, signal) => docker(['kill', '--signal', signal, name]),
  // Once the init of a container in the host's pid namespace is gone, the shim kills the rest with kill --all.
  killAll: { spec: { pidHost: true }, send: (name) => docker(['kill', '--signal', 'KILL', name]), signal: 9 },
  sent: () => sentArgv(argvLog),
  pause: (name) => docker(['pause', name]),
  unpause: (name) => docker(['unpause', name]),
  update: (name, r) =>
    docker([
      'update',
      ...(r.memory ? ['--memory', String(r.memory)] : []),
      ...(r.cpus ? ['--cpus', String(r.cpus)] : []),
      ...(r.pids ? ['--pids-limit', String(r.pids)] : []),
      name,
    ]),
  stop: (name, timeout) => docker(['stop', '--time', String(timeout), name]),
  wait: (name) => Number(docker(['wait', name]).stdout.trim()),
  remove: (name) => docker(['rm', '--force', name]),
  pid: (name) => Number(docker(['inspect', '--format', '{{.State.Pid}}', name]).stdout.trim()),
};

t.before(async () => {
  daemon = await Daemon.start(
    'dockerd',
    [
      'dockerd',
      '--config-file',
      daemonJson,
      '--data-root',
      path.join(work, 'data'),
      '--exec-root',
      execRoot,
      '--pidfile',
      path.join(work, 'docker.pid'),
      '--host',
      `unix://${sock}`,
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--ip-forward=false',
      '--ip-masq=false',
    ],
    path.join(work, 'dockerd.log'),
    () => fs.existsSync(sock) && docker(['version']).status === 0,
  );
  const archive = await busyboxArchive(path.join(work, 'busybox.tar'));
  const r = docker(['load', '--input', archive]);
  if (r.status !== 0) throw new Error(`docker load: ${r.stderr}`);
});

t.test('docker runs its containers on tsrun', async (t) => {
  await runScenarios(t, adapter);
  const sent = sentArgv(argvLog);
  t.ok(
    sent.some((l) => / create --bundle /.test(l)) && sent.every((l) => / --log-format json /.test(` ${l} `)),
    'dockerd drove tsrun through the shim (--log-format json every time)',
  );
  t.ok(
    sent.some((l) => /update --resources -/.test(l)),
    "update --resources - (runc's JSON on stdin)",
  );
});
