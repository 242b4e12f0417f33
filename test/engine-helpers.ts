/**
 * What the engine tests share: the busybox image as a docker-archive, a
 * runtime wrapper that gives tsrun the test's own --root and records every
 * command line an engine sends, daemons run under a subreaper (tini -s) in
 * private directories and stopped by pid, a terminal through script(1),
 * and the clean-up of cgroups and of the few paths engines make outside
 * the directories they are given.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { readHierarchies } from '../src/lib/cgroup/manager';
import { native } from '../src/lib/native';
import { type RunResult, runCommand, shellQuote, TSRUN, waitFor } from './helpers';
import { baseLayer, dockerArchive, imageOf } from './image-helpers';

export const IMAGE = 'localhost/tsrun-busybox:test';

/** The busybox fixture as a docker-archive (what docker/podman save write), tagged IMAGE. */
export async function busyboxArchive(file: string): Promise<string> {
  const img = imageOf([baseLayer()], {
    Cmd: ['sh'],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  });
  fs.writeFileSync(file, await dockerArchive(img, IMAGE));
  return file;
}

/**
 * An executable named `name` in `dir` that runs tsrun with `--root ROOT`
 * (the test's own state dir; an engine that passes its own --root, later
 * on the line, overrides it) and appends each command line to LOG.
 */
export function runtimeWrapper(dir: string, name: string, root: string, log: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${TSRUN}' --root '${root}' "$@"\n`, {
    mode: 0o755,
  });
  return file;
}

/** The command lines the wrapper recorded (one string each). */
export function sentArgv(log: string): string[] {
  try {
    return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Run `argv` on a pty (script -qfec), as a user at a terminal; the status is the command's. */
export function onTty(argv: string[], env: Record<string, string> = {}, timeoutMs = 60_000, cwd?: string): RunResult {
  return runCommand(['script', '-qfec', shellQuote(argv), '/dev/null'], { env, timeoutMs, cwd });
}

/** A daemon under `tini -s` (a subreaper, so orphans are reaped at once), logging to a file. */
export class Daemon {
  private constructor(
    readonly name: string,
    readonly pid: number,
    readonly log: string,
  ) {}

  static async start(
    name: string,
    argv: string[],
    log: string,
    ready: () => boolean,
    env: Record<string, string> = {},
  ): Promise<Daemon> {
    const fd = fs.openSync(log, 'a');
    const child = spawn('tini', ['-s', '--', ...argv], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    });
    fs.closeSync(fd);
    child.unref();
    const daemon = new Daemon(name, child.pid!, log);
    if (
      !(await waitFor(
        () => {
          if (!alivePid(daemon.pid)) throw new Error(`${name} exited: ${tail(log)}`);
          return ready();
        },
        30_000,
        100,
      ))
    ) {
      await daemon.stop();
      throw new Error(`${name} did not come up: ${tail(log)}`);
    }
    return daemon;
  }

  /** SIGTERM through tini, then SIGKILL if it lingers; waits until it is gone. */
  async stop(): Promise<void> {
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      return;
    }
    if (!(await waitFor(() => !alivePid(this.pid), 20_000, 100))) {
      for (const pid of descendants(this.pid))
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await waitFor(() => !alivePid(this.pid), 5_000, 50);
    }
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

export function alivePid(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]);
  } catch {
    return false;
  }
}

/** Processes whose command line contains `marker` (a socket path of ours, say). */
export function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker) && alivePid(Number(name)))
        out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** The parent pid and its name, of a process. */
export function parentOf(pid: number): { ppid: number; comm: string } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return { ppid, comm: fs.readFileSync(`/proc/${ppid}/comm`, 'utf8').trim() };
}

/** A process of the host whose command line is exactly `argv`. */
export function findProcess(argv: string[]): number | undefined {
  const want = argv.join('\0') + '\0';
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8') === want && alivePid(Number(name))) return Number(name);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** A process's cgroup directory on the host for a v1 controller (or the v2 dir), from /proc/PID/cgroup. */
export function hostCgroupDir(pid: number, controller: string): string {
  const lines = fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(':'));
  const v1 = lines.find(([, ctrls]) => ctrls.split(',').includes(controller));
  if (v1) {
    const h = readHierarchies().find((x) => x.version === 1 && x.controllers.includes(controller))!;
    return path.join(h.mountPoint, v1[2]);
  }
  const v2 = lines.find(([id]) => id === '0')!;
  return path.join(readHierarchies().find((x) => x.version === 2)!.mountPoint, v2[2]);
}

/**
 * A container's limits and freezer state as the kernel holds them, read
 * from its init's cgroup in v1 or v2 words, whichever hierarchy holds the
 * controller (so the same scenario checks a hybrid host and a v2 VM).
 */
export function cgroupKnobs(pid: number): {
  memoryLimit(): string;
  cpuQuota(): { quota: string; period: string };
  pidsMax(): string;
  frozen(): boolean;
} {
  const v2 = (controller: string): boolean =>
    !fs
      .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .some((l) => l.split(':')[1]?.split(',').includes(controller));
  const read = (controller: string, file: string): string =>
    fs.readFileSync(path.join(hostCgroupDir(pid, controller), file), 'utf8').trim();
  return {
    memoryLimit: () => read('memory', v2('memory') ? 'memory.max' : 'memory.limit_in_bytes'),
    cpuQuota: () => {
      if (!v2('cpu')) return { quota: read('cpu', 'cpu.cfs_quota_us'), period: read('cpu', 'cpu.cfs_period_us') };
      const [quota, period] = read('cpu', 'cpu.max').split(' ');
      return { quota, period };
    },
    pidsMax: () => read('pids', 'pids.max'),
    frozen: () =>
      v2('freezer')
        ? /^frozen 1$/m.test(read('freezer', 'cgroup.events'))
        : read('freezer', 'freezer.state') === 'FROZEN',
  };
}

/**
 * The cgroup manager the engine tests ask their engine for: systemd where
 * systemd is the init (the test/vm --systemd VM; what podman chooses by
 * itself there, and what a node sets with containerd's SystemdCgroup),
 * cgroupfs elsewhere (this host).  TSRUN_ENGINE_CGROUP_MANAGER overrides.
 */
export const CGROUP_MANAGER: 'systemd' | 'cgroupfs' =
  process.env.TSRUN_ENGINE_CGROUP_MANAGER === 'cgroupfs' || process.env.TSRUN_ENGINE_CGROUP_MANAGER === 'systemd'
    ? process.env.TSRUN_ENGINE_CGROUP_MANAGER
    : fs.existsSync('/run/systemd/system')
      ? 'systemd'
      : 'cgroupfs';

/** One property of a systemd unit (`systemctl show -p`), '' when systemctl says nothing. */
export function unitProperty(unit: string, property: string): string {
  const r = runCommand(['systemctl', 'show', unit, '-p', property, '--value']);
  return r.stdout.trim();
}

/** The units systemd has loaded whose names match a glob (`systemctl list-units --all`). */
export function unitsMatching(glob: string): string[] {
  return runCommand(['systemctl', 'list-units', '--all', '--plain', '--no-legend', glob])
    .stdout.split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
}

/** Remove a cgroup sub-tree (relative to each hierarchy's root) from every hierarchy, deepest first. */
export function removeCgroupTree(rel: string, settleMs = 5000): string[] {
  // An engine's helper (podman's conmon) may still be exiting when its engine has returned: its cgroup
  // empties a moment later.  Tried again for up to `settleMs`; what is left after that is reported.
  const deadline = Date.now() + settleMs;
  for (;;) {
    const left = removeCgroupTreeOnce(rel);
    if (left.length === 0 || Date.now() >= deadline) return left;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

function removeCgroupTreeOnce(rel: string): string[] {
  const left: string[] = [];
  for (const h of readHierarchies()) {
    const top = path.join(h.mountPoint, rel);
    if (!fs.existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
      dirs.push(d);
    };
    walk(top);
    for (const d of dirs) {
      try {
        fs.rmdirSync(d);
      } catch {
        left.push(d);
      }
    }
  }
  return left;
}

/**
 * Paths some engines make outside the directories they are given (the
 * shim's socket dir, podman's blob-info cache, dockerd's plugin dir).
 * Call this before the engine runs; the function it returns removes those
 * that did not exist before, a directory only when it is empty, so
 * nobody else's files go.
 */
export function pathsMadeAfter(paths: string[]): () => void {
  const before = new Set(paths.filter((p) => fs.existsSync(p)));
  return () => {
    for (const p of paths) {
      if (before.has(p) || !fs.existsSync(p)) continue;
      try {
        if (fs.lstatSync(p).isDirectory()) fs.rmdirSync(p);
        else fs.rmSync(p);
      } catch {
        // not empty: something else uses it too
      }
    }
  };
}

/**
 * The podman tests (engines/podman, compat/podman-config) take turns: podman
 * writes /var/lib/containers/cache and /run/containers whatever its --root,
 * and each test removes them only if they were not there before it began,
 * so two at once left them behind (the second saw the first's as already
 * there).  An exclusive flock on this file, held until the returned
 * function is called, after the test's clean-up.
 */
/** What a root podman makes under /var/lib and /run on its first use, whatever its --root: for pathsMadeAfter. */
export const PODMAN_SYSTEM_PATHS = [
  '/var/lib/containers/cache/blob-info-cache-v1.boltdb',
  '/var/lib/containers/cache',
  '/var/lib/containers',
  '/run/containers/networks',
  '/run/containers',
];

/** podman's flags for a store, run dir and temp dir of a test's own under `dir` (overlay storage). */
export function podmanStorageFlags(dir: string): string[] {
  return [
    '--root',
    path.join(dir, 'storage'),
    '--runroot',
    path.join(dir, 'run'),
    '--tmpdir',
    path.join(dir, 'tmp'),
    '--storage-driver',
    'overlay',
  ];
}

export function podmanTurn(): () => void {
  const fd = fs.openSync(__filename, 'r');
  native.flock(fd, true, true);
  return () => fs.closeSync(fd);
}

/**
 * A containers.conf for podman in tests: the cgroup manager (cgroupfs
 * unless told), events to a file, and default ulimits within this host's
 * limits (its bounding set lacks CAP_SYS_RESOURCE, so podman's default
 * 1048576 fails for any runtime); with `runtime`, that executable as
 * podman's default runtime "tsrun".
 */
export function podmanTestConf(
  file: string,
  runtime?: string,
  cgroupManager: 'cgroupfs' | 'systemd' = 'cgroupfs',
): string {
  const engine = runtime ? `runtime = "tsrun"\n\n[engine.runtimes]\ntsrun = ["${runtime}"]\n` : '';
  fs.writeFileSync(
    file,
    `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "${cgroupManager}"
events_logger = "file"
${engine}`,
  );
  return file;
}
