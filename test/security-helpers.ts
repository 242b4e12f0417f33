/**
 * Shared pieces of the security regression tests (test/security/): tsrun
 * with extra inherited fds, a running container to exec into, fingerprints
 * of host files, the host's /dev/null and mountinfo parsing.
 * Kept outside test/security/ so tap does not run it as a test file.
 */
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Config } from '../src/lib/config';
import { readHierarchies } from '../src/lib/cgroup/manager';
import {
  type Bundle,
  bundleProcesses,
  cleanupContainer,
  defaultCgroupDirs,
  makeBundle,
  type RunResult,
  type TestLike,
  tsrun,
  uniqueId,
  waitFor,
} from './helpers';

/**
 * Like helpers' tsrun(), but the caller leaves `extraFds` open: the child
 * gets them as fds 3, 4, ... (without close-on-exec), as a careless engine
 * would pass them; `stdin` may be any fd too.  Output through files, never pipes.
 */
export function tsrunLeaking(
  root: string,
  args: string[],
  extraFds: number[],
  opts: { timeoutMs?: number; stdin?: number } = {},
): RunResult {
  return tsrun(root, args, { extraFds, stdin: opts.stdin, timeoutMs: opts.timeoutMs });
}

export interface Running {
  bundle: Bundle;
  id: string;
  initPid: number;
}

/**
 * A detached running container (default: `sleep 1000`), deleted at
 * teardown.  `prepare` may change the bundle (rootfs, config) before run.
 */
export function runningContainer(
  t: TestLike & { equal: (...a: any[]) => any },
  mutate: (c: Config) => void = () => {},
  args: string[] = ['/bin/sleep', '1000'],
  prepare: (b: Bundle) => void = () => {},
): Running {
  const bundle = makeBundle(t, mutate, args);
  prepare(bundle);
  const id = uniqueId('sec');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run --detach: ${r.stderr}`);
  const state = tsrun(bundle.root, ['state', id]);
  const initPid = state.status === 0 ? (JSON.parse(state.stdout).pid as number) : 0;
  return { bundle, id, initPid };
}

export interface Fingerprint {
  sha256: string;
  mtimeMs: number;
  size: number;
  mode: number;
}

export function fingerprint(file: string): Fingerprint {
  const st = fs.statSync(file);
  return {
    sha256: crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'),
    mtimeMs: st.mtimeMs,
    size: st.size,
    mode: st.mode,
  };
}

export function fingerprints(files: string[]): Record<string, Fingerprint> {
  return Object.fromEntries(files.map((f) => [f, fingerprint(f)]));
}

/** Regular files under `dir` whose names pass `keep`, recursively. */
export function filesUnder(dir: string, keep: (name: string) => boolean = () => true): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p, keep));
    else if (e.isFile() && keep(e.name)) out.push(p);
  }
  return out;
}

/** The host's /dev/null as the tests compare it. */
export function devNullState(): { uid: number; gid: number; mode: string; chr: boolean; major: number; minor: number } {
  const st = fs.statSync('/dev/null');
  // Linux dev_t: major in bits 8-19 (and 32+), minor in bits 0-7 and 20-31.
  const rdev = st.rdev;
  return {
    uid: st.uid,
    gid: st.gid,
    mode: (st.mode & 0o7777).toString(8),
    chr: st.isCharacterDevice(),
    major: (rdev >> 8) & 0xfff,
    minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
  };
}

export const HOST_DEV_NULL = { uid: 0, gid: 0, mode: '666', chr: true, major: 1, minor: 3 };

/** Put the host's /dev/null back if a failing test changed it (and say so). */
export function restoreDevNull(): void {
  const st = fs.statSync('/dev/null');
  if (st.uid !== 0 || st.gid !== 0) fs.chownSync('/dev/null', 0, 0);
  if ((st.mode & 0o7777) !== 0o666) fs.chmodSync('/dev/null', 0o666);
}

export interface MountLine {
  id: number;
  parent: number;
  majorMinor: string;
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): MountLine[] {
  const out: MountLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 7 || sep < 0) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      majorMinor: f[2],
      root: unescape(f[3]),
      mountpoint: unescape(f[4]),
      fstype: f[sep + 1],
      source: unescape(f[sep + 2] ?? ''),
    });
  }
  return out;
}

/** A temp dir on the host (0755, so a user-namespaced root can traverse it), removed at teardown. */
export function hostDir(t: TestLike, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A user namespace mapping container 0..65535 to host 100000.., as the integration tests use. */
export function withUserns(c: Config): void {
  c.linux!.namespaces!.push({ type: 'user' });
  c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
}

/** The remapped root must be able to reach the rootfs (mkdtemp makes 0700 dirs). */
export function openBundleToUserns(b: Bundle): void {
  fs.chmodSync(b.dir, 0o755);
}

/** runc spec's default capability set (AUDIT_WRITE, KILL, NET_BIND_SERVICE). */
export const DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
export const defaultCaps = (): NonNullable<Config['process']>['capabilities'] => ({
  bounding: [...DEFAULT_CAPS],
  effective: [...DEFAULT_CAPS],
  permitted: [...DEFAULT_CAPS],
});

/**
 * For tests where tsrun itself may be killed by a timeout (a hang is the
 * bug they look for): at teardown, SIGKILL whatever of the bundle's
 * container still runs and remove its cgroups, so a failure leaks nothing.
 */
export function reapAtTeardown(t: TestLike, bundle: Bundle, id: string): void {
  t.teardown(async () => {
    for (const pid of bundleProcesses(bundle)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await waitFor(() => bundleProcesses(bundle).length === 0, 5_000);
    for (const dir of [...defaultCgroupDirs(id), ...readHierarchies().map((h) => path.join(h.mountPoint, id))])
      removeCgroupTree(dir);
  });
}

function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // still busy: leftovers() in the test reports it
  }
}

/** Swaps each pair of paths it is given with renameat2(RENAME_EXCHANGE), as fast as it can, for ever. */
const SWAPPER_C = `
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE 2
#endif
static volatile sig_atomic_t marked;
static void mark(int sig) { (void)sig; marked = 1; }
int main(int argc, char **argv)
{
	if (argc < 3 || argc % 2 == 0)
		return 2;
	signal(SIGUSR1, mark);
	unsigned long since = 0;
	for (;;)
		for (int i = 1; i + 1 < argc; i += 2) {
			long r = syscall(SYS_renameat2, AT_FDCWD, argv[i], AT_FDCWD, argv[i + 1], RENAME_EXCHANGE);
			if (!marked)
				continue;
			if (r == 0)
				since++;
			else if (errno == ENOENT) {
				printf("%lu\\n", since);
				return 0;
			}
		}
}
`;

/**
 * The swapper, built in `dir`: `swapper A B [C D ...]` exchanges each pair
 * (renameat2 RENAME_EXCHANGE) as fast as it can, for ever.  After SIGUSR1
 * it counts the exchanges that succeed, and the first that fails because
 * an entry is gone (removed under it) ends it, printing that count: how
 * often the tree changed after the mark, up to its removal.  Static when
 * it is to run inside a container (any rootfs), against the host's libc
 * otherwise.
 */
export function buildSwapper(
  t: TestLike & { equal: (...a: any[]) => any },
  dir: string,
  opts: { static?: boolean } = {},
): string {
  const src = path.join(dir, 'swapper.c');
  const bin = path.join(dir, 'swapper');
  fs.writeFileSync(src, SWAPPER_C);
  const cc = spawnSync('cc', ['-O2', ...(opts.static ? ['-static'] : []), '-o', bin, src], { encoding: 'utf8' });
  t.equal(cc.status, 0, `build the swapper: ${cc.stderr}`);
  return bin;
}

/** The pids in a cgroup directory and every cgroup below it, read by the test itself. */
export function cgroupTreePids(dir: string): number[] {
  let out: number[] = [];
  try {
    out = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    for (const e of fs.readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) out.push(...cgroupTreePids(path.join(dir, e.name)));
  } catch {
    // gone
  }
  return out;
}
