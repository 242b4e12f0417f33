/**
 * exec into a running container: exit status, process attributes, the
 * container's namespaces and cgroups, tty over a console socket, detach
 * with a pid file, preserve-fds, --process files, and the states exec
 * refuses.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { native } from '../../src/lib/native';
import {
  cleanupContainer,
  IS_ROOT,
  leftovers,
  makeBundle,
  TSRUN,
  tsrun,
  tsrunAsync,
  uniqueId,
  waitFor,
} from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: any[]) => any>>[0];

/** A running container (checker sleeping) to exec into. */
function running(t: TapTest) {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '60']);
  const id = uniqueId('exec');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run --detach: ${r.stderr}`);
  const state = JSON.parse(tsrun(bundle.root, ['state', id]).stdout);
  return { bundle, id, initPid: state.pid as number };
}

t.test('exec runs in the container: exit status, namespaces, cgroups, attributes', async (t) => {
  const { bundle, id, initPid } = running(t);
  t.equal(tsrun(bundle.root, ['exec', id, '/bin/sh', '-c', 'exit 7']).status, 7, "the exit status is exec's");
  t.equal(tsrun(bundle.root, ['exec', id, '/bin/sh', '-c', 'kill -KILL $$']).status, 137, 'a signal becomes 128+N');

  const r = tsrun(bundle.root, [
    'exec',
    '--user',
    '1000:1000',
    '--additional-gids',
    '1001',
    '--cwd',
    '/tmp',
    '--env',
    'FOO=bar',
    '--env',
    'TERM=dumb',
    '--no-new-privs',
    id,
    '/bin/checker',
    'report',
    'x',
  ]);
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.match(report, {
    uid: 1000,
    gid: 1000,
    groups: [1001],
    cwd: '/tmp',
    noNewPrivs: true,
    args: ['/bin/checker', 'report', 'x'],
  });
  t.ok(
    report.env.includes('FOO=bar') && report.env.includes('TERM=dumb') && !report.env.includes('TERM=xterm'),
    '--env adds and overrides',
  );
  t.ok(
    report.env.some((e: string) => e.startsWith('PATH=')),
    "the container's env is the base",
  );
  for (const ns of ['pid', 'mnt', 'net', 'ipc', 'uts']) {
    t.equal(
      report.namespaces[ns],
      fs.readlinkSync(`/proc/${initPid}/ns/${ns}`),
      `exec joined the init's ${ns} namespace`,
    );
  }
  t.not(report.pid, 1, 'a new pid inside the container');
  t.same(report.fds && Object.keys(report.fds).filter((fd) => Number(fd) > 2), [], 'no fds leak into the exec');
  t.same(report.signals.ignoredSignals, [], 'no ignored signals');
  const initCgroups = fs.readFileSync(`/proc/${initPid}/cgroup`, 'utf8');
  t.same(report.cgroup.join('\n').trim(), initCgroups.trim(), "exec is in the init's cgroups");
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});

t.test("exec into a container with its own cgroup namespace joins it, and the init's cgroup", async (t) => {
  // Under cgroup2's nsdelegate (the v2 VM, any systemd host; podman gives each container a cgroup namespace there)
  // a helper that joined the namespace before its clone into the cgroup was refused: ENOENT.
  const bundle = makeBundle(t, (c) => c.linux!.namespaces!.push({ type: 'cgroup' }), ['/bin/checker', 'sleep', '60']);
  const id = uniqueId('exec-cgns');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]).status, 0);
  const initPid = JSON.parse(tsrun(bundle.root, ['state', id]).stdout).pid as number;
  const r = tsrun(bundle.root, ['exec', id, '/bin/checker', 'report']);
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.equal(report.namespaces.cgroup, fs.readlinkSync(`/proc/${initPid}/ns/cgroup`), "the init's cgroup namespace");
  const inside = tsrun(bundle.root, ['exec', id, '/bin/cat', '/proc/1/cgroup']);
  t.same(report.cgroup.join('\n').trim(), inside.stdout.trim(), "the init's cgroups, as the namespace shows them");
  t.ok(
    report.cgroup.filter(Boolean).every((l: string) => l.endsWith(':/')),
    `each at the namespace's root: ${report.cgroup.join(' ')}`,
  );

  // The same order for create: a container joining that namespace is cloned into its own cgroup first.
  const joiner = makeBundle(
    t,
    (c) => c.linux!.namespaces!.push({ type: 'cgroup', path: `/proc/${initPid}/ns/cgroup` }),
    ['/bin/checker', 'report'],
  );
  const joined = tsrun(joiner.root, ['run', '-b', joiner.dir, uniqueId('join-cgns')]);
  t.equal(joined.status, 0, `a container joining the cgroup namespace: ${joined.stderr}`);
  if (joined.status === 0)
    t.equal(JSON.parse(joined.stdout).namespaces.cgroup, report.namespaces.cgroup, 'it is in that namespace');
  // With a user namespace of its own the helper joins the cgroup first and clones plainly (cgroup/placement.ts),
  // so the join stays with the others, before the user namespace is made, where it can be made.
  const userns = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces!.push({ type: 'user' }, { type: 'cgroup', path: `/proc/${initPid}/ns/cgroup` });
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    },
    ['/bin/checker', 'report'],
  );
  fs.chmodSync(userns.dir, 0o755); // the remapped root must reach the rootfs
  const withUserns = tsrun(userns.root, ['run', '-b', userns.dir, uniqueId('join-cgns-userns')]);
  t.equal(withUserns.status, 0, `and one with a user namespace of its own: ${withUserns.stderr}`);
  if (withUserns.status === 0)
    t.equal(JSON.parse(withUserns.stdout).namespaces.cgroup, report.namespaces.cgroup, 'in that namespace too');

  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});

t.test('exec --process FILE, and errors for bad input', async (t) => {
  const { bundle, id } = running(t);
  const file = path.join(bundle.dir, 'process.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ args: ['/bin/checker', 'exit', '4'], cwd: '/', env: ['A=1'], user: { uid: 0, gid: 0 } }),
  );
  t.equal(tsrun(bundle.root, ['exec', '--process', file, id]).status, 4, 'the process file runs');
  fs.writeFileSync(file, JSON.stringify({ args: 'nope', cwd: '/' }));
  const bad = tsrun(bundle.root, ['exec', '--process', file, id]);
  t.not(bad.status, 0);
  t.match(bad.stderr, /^tsrun: exec \S+: --process .*process\.args/);
  const missing = tsrun(bundle.root, ['exec', id, '/nope']);
  t.match(missing.stderr, /^tsrun: exec \S+: exec \/nope: no such file or directory\n$/);
  t.not(missing.status, 0);
  const noCmd = tsrun(bundle.root, ['exec', id]);
  t.match(noCmd.stderr, /a command to run is required/);
  t.not(tsrun(bundle.root, ['exec', '--user', 'bob', id, '/bin/true']).status, 0, 'a non-numeric user is refused');
});

t.test('exec --detach --pid-file returns at once; the process runs on', async (t) => {
  const { bundle, id } = running(t);
  const pidFile = path.join(bundle.dir, 'exec.pid');
  const r = tsrun(bundle.root, ['exec', '--detach', '--pid-file', pidFile, id, '/bin/checker', 'sleep', '30']);
  t.equal(r.status, 0, r.stderr);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  t.ok(pid > 0 && fs.existsSync(`/proc/${pid}`), 'the detached process is alive');
  const ps = JSON.parse(tsrun(bundle.root, ['ps', '--format', 'json', id]).stdout) as number[];
  t.ok(ps.includes(pid), 'ps lists it');
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.ok(
    await waitFor(() => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')),
    'delete --force ends it too',
  );
});

t.test('exec --preserve-fds passes fds through, and nothing else', async (t) => {
  const { bundle, id } = running(t);
  const extra = fs.openSync(path.join(bundle.dir, 'config.json'), 'r');
  const stray = fs.openSync(path.join(bundle.dir, 'config.json'), 'r');
  t.teardown(() => {
    fs.closeSync(extra);
    fs.closeSync(stray);
  });
  const out = path.join(bundle.dir, 'out');
  const outFd = fs.openSync(out, 'w');
  const run = (preserve: string[]) =>
    spawnSync(
      '/usr/bin/env',
      ['-i', `PATH=${process.env.PATH}`, TSRUN, '--root', bundle.root, 'exec', ...preserve, id, '/bin/checker', 'fds'],
      { stdio: ['ignore', outFd, 'inherit', extra, stray] },
    );
  t.equal(run(['--preserve-fds', '1']).status, 0);
  const withOne = JSON.parse(fs.readFileSync(out, 'utf8'));
  t.ok('3' in withOne && !('4' in withOne), 'fd 3 is passed, fd 4 is not');
  fs.ftruncateSync(outFd, 0);
  t.equal(run([]).status, 0);
  const none = JSON.parse(fs.readFileSync(out, 'utf8').replace(/^\0+/, ''));
  t.same(
    Object.keys(none).filter((fd) => Number(fd) > 2),
    [],
    'without --preserve-fds only stdio',
  );
  fs.closeSync(outFd);
});

t.test('exec --tty with --console-socket: the process runs on a pty', async (t) => {
  const { bundle, id } = running(t);
  const socketPath = path.join(bundle.dir, 'console.sock');
  const listener = native.listenUnix(socketPath);
  t.teardown(() => native.close(listener));
  const r = tsrun(bundle.root, [
    'exec',
    '--tty',
    '--detach',
    '--console-socket',
    socketPath,
    id,
    '/bin/sh',
    '-c',
    'tty; sleep 1',
  ]);
  t.equal(r.status, 0, r.stderr);
  const conn = native.acceptUnix(listener, 5_000);
  const master = native.recvFd(conn, 5_000);
  native.close(conn);
  const buf = Buffer.alloc(4096);
  const n = fs.readSync(master, buf, 0, buf.length, null);
  fs.closeSync(master);
  t.match(buf.toString('utf8', 0, n), /^\/dev\/pts\/\d+/, 'stdin is a pty of the container');
});

t.test('exec refuses stopped containers, and paused ones without --ignore-paused', async (t) => {
  const { bundle, id } = running(t);
  t.equal(tsrun(bundle.root, ['pause', id]).status, 0);
  const paused = tsrun(bundle.root, ['exec', id, '/bin/true']);
  t.not(paused.status, 0);
  t.match(paused.stderr, /paused container.*--ignore-paused/);
  // As runc's: the process is set up inside the frozen cgroups, so even
  // --detach returns only once the container is resumed.
  const detached = tsrunAsync(bundle.root, ['exec', '--ignore-paused', '--detach', id, '/bin/true']);
  let returned = false;
  void detached.then(() => {
    returned = true;
  });
  await new Promise((r) => setTimeout(r, 1000));
  t.notOk(returned, '--ignore-paused waits while the container is paused');
  t.equal(tsrun(bundle.root, ['resume', id]).status, 0);
  const r = await detached;
  t.equal(r.status, 0, `--ignore-paused lets it in once resumed: ${r.stderr}`);
  t.equal(tsrun(bundle.root, ['kill', id, 'KILL']).status, 0);
  t.ok(await waitFor(() => JSON.parse(tsrun(bundle.root, ['state', id]).stdout).status === 'stopped'));
  const stopped = tsrun(bundle.root, ['exec', id, '/bin/true']);
  t.not(stopped.status, 0);
  t.match(stopped.stderr, /^tsrun: exec \S+: cannot exec in a stopped container\n$/);
  const unknown = tsrun(bundle.root, ['exec', 'no-such-id', '/bin/true']);
  t.match(unknown.stderr, /does not exist/);
});
