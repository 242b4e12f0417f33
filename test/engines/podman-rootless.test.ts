/**
 * Rootless podman (issue 20): a user made for the test runs podman 4.3
 * with `--runtime` tsrun and with runc, and each scenario must come out
 * the same under both.  podman runs its runtime inside the user's rootless
 * user namespace, as root there, with no user namespace in the config and
 * no --root: tsrun then takes $XDG_RUNTIME_DIR/tsrun as runc takes its
 * own, binds the devices it cannot make, and treats cgroups as rootless.
 * Networks are "none": slirp4netns cannot open /dev/net/tun here.
 * Where systemd is the init and cgroups are v2 only (the systemd VM),
 * podman's rootless default is systemd's cgroup manager, the user's own
 * (lingering starts it): tsrun then asks it on the session bus, as runc
 * does, and every scenario runs that way, pause included.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { REFERENCE, referenceInstalled } from '../compat-helpers';
import { busyboxArchive, CGROUP_MANAGER, IMAGE, onTty, podmanTestConf, sentArgv } from '../engine-helpers';
import { IS_ROOT, runCommand, TSRUN, waitFor } from '../helpers';
import { asUser, makeTestUser, type TestUser } from '../rootless-helpers';

if (!IS_ROOT || runCommand(['podman', '--version']).status !== 0 || !referenceInstalled()) {
  t.plan(0, 'needs root (to make the test user), podman and runc');
  process.exit(0);
}

const user: TestUser = makeTestUser(t);
const USER_MANAGER = CGROUP_MANAGER === 'systemd' && fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
/** The user's runtime dir: its login's (/run/user/UID) where its manager runs, else the test's own. */
const runtimeDir = USER_MANAGER ? `/run/user/${user.uid}` : user.runtimeDir;
if (USER_MANAGER) {
  const linger = spawnSync('loginctl', ['enable-linger', user.name], { encoding: 'utf8' });
  if (linger.status !== 0) throw new Error(`loginctl enable-linger: ${linger.stderr}`);
  t.teardown(() => {
    spawnSync('loginctl', ['disable-linger', user.name]);
    spawnSync('systemctl', ['stop', `user@${user.uid}.service`]);
  });
}
const sessionEnv: Record<string, string> = USER_MANAGER
  ? { XDG_RUNTIME_DIR: runtimeDir, DBUS_SESSION_BUS_ADDRESS: `unix:path=${runtimeDir}/bus` }
  : {};
// Files the user must reach: a directory of its own for the wrappers, the image and podman's config.
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-podman-rl-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
fs.chmodSync(work, 0o755);

/** A runtime wrapper that logs each command line podman sends, then runs the runtime (no --root: its default). */
function wrapper(name: string, runtime: string): { bin: string; log: string } {
  const bin = path.join(work, name);
  const log = path.join(work, `${name}.log`);
  fs.writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${runtime}' "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(log, '', { mode: 0o666 });
  fs.chmodSync(log, 0o666);
  return { bin, log };
}
const RUNTIMES = { runc: wrapper('runc', REFERENCE.bin), tsrun: wrapper('tsrun', TSRUN) };
type Runtime = keyof typeof RUNTIMES;
const conf = podmanTestConf(path.join(work, 'containers.conf'), undefined, USER_MANAGER ? 'systemd' : 'cgroupfs');
fs.chmodSync(conf, 0o644);

const env = { CONTAINERS_CONF: conf, ...sessionEnv };
const podman = (runtime: Runtime, args: string[], timeoutMs = 120_000) =>
  asUser(user, ['podman', '--runtime', RUNTIMES[runtime].bin, ...args], { env, cwd: work, timeoutMs });

/** Each runtime's result for the same podman command line; `name` for a container name per runtime. */
function both(args: (name: string) => string[]): Record<Runtime, ReturnType<typeof podman>> {
  const out = {} as Record<Runtime, ReturnType<typeof podman>>;
  for (const runtime of Object.keys(RUNTIMES) as Runtime[]) out[runtime] = podman(runtime, args(`c-${runtime}`));
  return out;
}

/** What tsrun left in its default state root, in the user's runtime dir. */
const tsrunState = (): string[] => {
  try {
    return fs.readdirSync(path.join(runtimeDir, 'tsrun')).filter((e) => !e.startsWith('.'));
  } catch {
    return [];
  }
};

t.before(async () => {
  if (USER_MANAGER && !(await waitFor(() => fs.existsSync(`${runtimeDir}/bus`), 120_000, 200)))
    throw new Error(`no session bus at ${runtimeDir}/bus: the user's manager did not start`);
  const archive = await busyboxArchive(path.join(work, 'busybox.tar'));
  fs.chmodSync(archive, 0o644);
  const load = asUser(user, ['podman', 'load', '-i', archive], { env, cwd: work, timeoutMs: 120_000 });
  if (load.status !== 0) throw new Error(`podman load as ${user.name}: ${load.stderr}`);
});

t.teardown(() => {
  for (const runtime of Object.keys(RUNTIMES) as Runtime[]) podman(runtime, ['rm', '--all', '--force', '--time', '0']);
});

t.test('run: the same output, exit status and user namespace under both', async (t) => {
  const r = both(() => [
    'run',
    '--rm',
    '--network',
    'none',
    IMAGE,
    'sh',
    '-c',
    'id; cat /proc/self/uid_map; ls /dev | tr "\\n" " "; echo; exit 3',
  ]);
  t.equal(r.runc.status, 3, r.runc.stderr);
  t.equal(r.tsrun.status, 3, r.tsrun.stderr);
  t.equal(r.tsrun.stdout, r.runc.stdout);
  t.match(r.tsrun.stdout, /^uid=0\(root\) gid=0\(root\)/);
  // In podman's namespace, no user namespace in the config, no --root: tsrun's own default.
  // (With the systemd cgroup manager, podman gives --systemd-cgroup before the verb.)
  const create = sentArgv(RUNTIMES.tsrun.log).find((l) => /^(--systemd-cgroup )?create /.test(l));
  t.ok(create, 'podman created the container through tsrun');
  t.notMatch(create!, /--root/);
  t.same(tsrunState(), [], 'nothing left in $XDG_RUNTIME_DIR/tsrun');
});

t.test('a detached container: exec, top, pause (refused alike), stop, rm', async (t) => {
  const started = both((name) => ['run', '-d', '--name', name, '--network', 'none', IMAGE, 'sleep', '1000']);
  t.equal(started.runc.status, 0, started.runc.stderr);
  t.equal(started.tsrun.status, 0, started.tsrun.stderr);
  const exec = both((name) => ['exec', name, 'sh', '-c', 'echo in; id -u; exit 4']);
  t.equal(exec.tsrun.status, 4);
  t.equal(exec.tsrun.stdout, exec.runc.stdout);
  const top = both((name) => ['top', name, 'args']);
  t.equal(top.tsrun.status, 0, top.tsrun.stderr);
  t.equal(top.tsrun.stdout, top.runc.stdout, 'the same processes');
  const pause = both((name) => ['pause', name]);
  if (USER_MANAGER) {
    // The container's scope, made by the user's manager for each runtime, in the same place.
    const cgroups = {} as Record<Runtime, string>;
    for (const runtime of Object.keys(RUNTIMES) as Runtime[]) {
      const pid = podman(runtime, ['inspect', '--format', '{{.State.Pid}}', `c-${runtime}`]).stdout.trim();
      cgroups[runtime] = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').replace(/libpod-[0-9a-f]{64}/, 'libpod-ID');
    }
    t.equal(cgroups.tsrun, cgroups.runc, 'the same cgroup, ids aside');
    t.match(
      cgroups.tsrun,
      new RegExp(
        `^0::/user\\.slice/user-${user.uid}\\.slice/user@${user.uid}\\.service/user\\.slice/libpod-ID\\.scope`,
      ),
    );
    t.equal(pause.tsrun.status, 0, pause.tsrun.stderr);
    t.equal(pause.runc.status, 0, pause.runc.stderr);
    const resume = both((name) => ['unpause', name]);
    t.equal(resume.tsrun.status, 0, resume.tsrun.stderr);
  } else {
    // No cgroup for a user on this hybrid host: podman says so before asking the runtime.
    t.not(pause.tsrun.status, 0);
    t.equal(pause.tsrun.stderr, pause.runc.stderr);
  }
  const stop = both((name) => ['stop', '-t', '1', name]);
  t.equal(stop.tsrun.status, 0, stop.tsrun.stderr);
  const rm = both((name) => ['rm', name]);
  t.equal(rm.tsrun.status, 0, rm.tsrun.stderr);
  t.same(tsrunState(), []);
});

t.test('a terminal, a bind volume, another user, a limit podman leaves out', async (t) => {
  const tty = {} as Record<Runtime, string>;
  for (const runtime of Object.keys(RUNTIMES) as Runtime[]) {
    const r = onTty(
      [
        'runuser',
        '-u',
        user.name,
        '--',
        'podman',
        '--runtime',
        RUNTIMES[runtime].bin,
        'run',
        '--rm',
        '-t',
        '--network',
        'none',
        IMAGE,
        'sh',
        '-c',
        'tty; stty size >/dev/null && echo sized',
      ],
      { ...env, XDG_RUNTIME_DIR: runtimeDir, HOME: `/home/${user.name}` },
      120_000,
      work,
    );
    t.equal(r.status, 0, `${runtime}: ${r.stdout}`);
    tty[runtime] = r.stdout;
  }
  t.equal(tty.tsrun, tty.runc);
  t.match(tty.tsrun, /\/dev\/pts\/0/);

  const data = path.join(work, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'in'), 'from the host\n');
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, data]);
  const volume = both(() => ['run', '--rm', '--network', 'none', '-v', `${data}:/data`, IMAGE, 'cat', '/data/in']);
  t.equal(volume.tsrun.status, 0, volume.tsrun.stderr);
  t.equal(volume.tsrun.stdout, 'from the host\n');
  const other = both(() => ['run', '--rm', '--network', 'none', '--user', '1000:1000', IMAGE, 'id']);
  t.equal(other.tsrun.stdout, other.runc.stdout);
  t.match(other.tsrun.stdout, /^uid=1000\(\w+\) gid=1000\(\w+\)/);
  const limited = both(() => ['run', '--rm', '--network', 'none', '--memory', '64m', IMAGE, 'true']);
  t.equal(limited.tsrun.status, limited.runc.status);
  t.equal(limited.tsrun.stderr, limited.runc.stderr, 'the same warning');
  t.same(tsrunState(), []);
});
