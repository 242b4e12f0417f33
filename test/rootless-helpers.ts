/**
 * Rootless tests: an unprivileged user made for the test file (useradd
 * gives it a range in /etc/subuid and /etc/subgid, as for any new user),
 * bundles it owns, and tsrun (or runc) run as that user with runuser.
 * Everything is removed at teardown: the user, its home, its ranges.
 */
import fs = require('fs');
import os = require('os');
import path = require('path');
import { spawnSync } from 'child_process';
import { type Config } from '../src/lib/config';
import { FIXTURE_ROOTFS, runCommand, type RunResult, type TestLike, TSRUN } from './helpers';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** Its $XDG_RUNTIME_DIR (0700, its own), where tsrun keeps state by default. */
  runtimeDir: string;
  /** The first of its subordinate uids and gids, from /etc/subuid and /etc/subgid; undefined when it has none. */
  subuid?: number;
  subgid?: number;
}

let users = 0;

function run(argv: string[]): string {
  const r = withShadowLock(() => spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' }));
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error}`);
  return String(r.stdout);
}

/**
 * useradd and userdel give up at once when another holds the lock of
 * /etc/passwd, /etc/subuid or /etc/subgid ("cannot lock ...; try again
 * later"), as the test files that make users may at the same moment: tried
 * again, for a few seconds.
 */
function withShadowLock(step: () => ReturnType<typeof spawnSync>): ReturnType<typeof spawnSync> {
  let r = step();
  for (let i = 0; i < 50 && r.status !== 0 && /cannot lock|try again later/.test(String(r.stderr)); i++) {
    spawnSync('sleep', ['0.1']);
    r = step();
  }
  return r;
}

function subordinate(file: string, name: string): number | undefined {
  const line = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[1]) : undefined;
}

/**
 * A new user, removed at teardown (userdel takes its ranges back too).
 * `subordinate: false`: useradd gives it no range in /etc/subuid and
 * /etc/subgid (a user the administrator gave none); the files are never
 * edited here, so parallel test files cannot race on them.
 */
export function makeTestUser(t: TestLike, opts: { subordinate?: boolean } = {}): TestUser {
  const name = `tsrl${process.pid % 100000}x${++users}`;
  const noRanges = opts.subordinate === false ? ['-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0'] : [];
  run(['useradd', '--create-home', '--shell', '/bin/sh', ...noRanges, name]);
  t.teardown(() => {
    // userdel refuses a user with processes: they are killed, and waited for, first.
    for (let i = 0; i < 100 && spawnSync('pgrep', ['-u', name]).status === 0; i++) {
      spawnSync('pkill', ['-KILL', '-u', name]);
      spawnSync('sleep', ['0.05']);
    }
    const del = withShadowLock(() => spawnSync('userdel', ['--remove', name], { encoding: 'utf8' }));
    if (del.status !== 0 && !/mail spool/.test(String(del.stderr))) throw new Error(`userdel ${name}: ${del.stderr}`);
  });
  const uid = Number(run(['id', '-u', name]).trim());
  const gid = Number(run(['id', '-g', name]).trim());
  const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), `tsrun-xdg-${name}-`));
  fs.chownSync(runtimeDir, uid, gid);
  fs.chmodSync(runtimeDir, 0o700);
  t.teardown(() => fs.rmSync(runtimeDir, { recursive: true, force: true }));
  return {
    name,
    uid,
    gid,
    runtimeDir,
    subuid: subordinate('/etc/subuid', name),
    subgid: subordinate('/etc/subgid', name),
  };
}

export interface UserBundle {
  dir: string;
  rootfs: string;
  config: Config;
}

/**
 * A bundle the user owns, in a directory only it may enter, with the
 * config `tsrun spec --rootless` writes for it, changed by `mutate`.
 */
export function userBundle(t: TestLike, user: TestUser, mutate: (c: Config) => void = () => {}): UserBundle {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-rl-bundle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rootfs = path.join(dir, 'rootfs');
  // Its contents (the fixture may be a link to the tree, which cp -a would copy as a link).
  fs.mkdirSync(rootfs);
  run(['cp', '-a', `${FIXTURE_ROOTFS}/.`, rootfs]);
  run(['chown', '-R', `${user.uid}:${user.gid}`, dir]);
  fs.chmodSync(dir, 0o700);
  const spec = asUser(user, [TSRUN, 'spec', '--rootless'], { cwd: dir });
  if (spec.status !== 0) throw new Error(`tsrun spec --rootless: ${spec.stderr}`);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Config;
  config.process!.terminal = false;
  config.process!.args = ['/bin/checker'];
  mutate(config);
  writeUserConfig({ dir, rootfs, config }, user);
  return { dir, rootfs, config };
}

export function writeUserConfig(bundle: UserBundle, user: TestUser): void {
  const file = path.join(bundle.dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(bundle.config, null, 2));
  fs.chownSync(file, user.uid, user.gid);
}

/**
 * argv run as the user (runuser), with its runtime dir; waits (runCommand).
 * `cgroup`: a cgroup2 directory root moves it into first, as a login
 * manager places a user's session.
 */
export function asUser(
  user: TestUser,
  argv: string[],
  opts: Parameters<typeof runCommand>[1] & { env?: Record<string, string>; cgroup?: string } = {},
): RunResult {
  const moved = opts.cgroup
    ? ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', path.join(opts.cgroup, 'cgroup.procs')]
    : [];
  return runCommand([...moved, 'runuser', '-u', user.name, '--', ...argv], {
    ...opts,
    env: { XDG_RUNTIME_DIR: user.runtimeDir, HOME: `/home/${user.name}`, ...(opts.env ?? {}) },
  });
}

/** tsrun as the user, its state in the default place ($XDG_RUNTIME_DIR/tsrun) unless --root is in args. */
export function tsrunAsUser(user: TestUser, args: string[], opts: Parameters<typeof asUser>[2] = {}): RunResult {
  return asUser(user, [TSRUN, ...args], opts);
}

/** What a user's containers left in its state directory. */
export function userState(user: TestUser): string[] {
  try {
    return fs.readdirSync(path.join(user.runtimeDir, 'tsrun')).filter((e) => !e.startsWith('.'));
  } catch {
    return [];
  }
}

/** The maps of a user with ranges: its own ids as root, its subordinate ids from 1 (as podman maps them). */
export function mapRanges(c: Config, user: TestUser): void {
  c.linux!.uidMappings = [
    { containerID: 0, hostID: user.uid, size: 1 },
    { containerID: 1, hostID: user.subuid!, size: 65536 },
  ];
  c.linux!.gidMappings = [
    { containerID: 0, hostID: user.gid, size: 1 },
    { containerID: 1, hostID: user.subgid!, size: 65536 },
  ];
}
