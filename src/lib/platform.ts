/**
 * The parent side's seam: everything create, exec and launch do to the
 * host that a unit test must be able to stand in for, as one interface
 * (youki's Syscall trait, crun's libcrun_testing).  `realPlatform` is the
 * host; test/fake-platform.ts scripts a helper, records processes and
 * cgroups, and snapshots the state at each crash step, so the failure
 * paths of the lifecycle are tested without root (test/unit/lifecycle.test.ts).
 *
 * What is not here is either pure (the plan compiler), already rooted in a
 * directory the caller chooses (the state store, hooks, pid files), or not
 * reached by a container without those features (images, net devices,
 * seccomp listeners, host mounts).
 */
import fs = require('fs');
import { cgroupManagerFor, cgroupManagerFrom, type ManagerChoice } from './cgroup';
import { type CgroupManager, type CgroupState } from './cgroup/manager';
import { type Config } from './config';
import { type CrashStep, crashPoint } from './crash';
import { realHost } from './host';
import { INIT_HELPER, native } from './native';
import { type HostView } from './plan';
import { sleepSync } from './sleep';
import { TsrunError } from './errors';
import { connectConsole } from './process-io';
import { processStartTime } from './state';
import { type ChildMessage, receive, send, type Sync } from './sync';

/** What tsrun-init is started with (native/init.c's usage). */
export interface HelperStart {
  plan: Buffer;
  fifoFd: number;
  consoleFd: number;
  rootfsFd: number;
  preserveFds: number;
  /** Its fds 0-2, when not ours. */
  stdio: [number, number, number] | null;
}

/** The helper and the sync protocol with it (native/plan.h). */
export interface HelperChannel {
  /** Start tsrun-init: its pid (a child of ours) and our end of the sync socket. */
  spawn(start: HelperStart): { pid: number; syncFd: number };
  receive(syncFd: number): ChildMessage;
  send(syncFd: number, type: Sync.MAPS_WRITTEN | Sync.CONTINUE | Sync.HOOKS_DONE, payload?: string): void;
  /** Close an fd the helper gave us (the sync socket, a seccomp listener). */
  close(fd: number): void;
}

/** Processes of ours and the container's. */
export interface ProcessControl {
  /** kill(2); a process already gone is not an error. */
  kill(pid: number, signal: NodeJS.Signals): void;
  /** waitpid(2) on a child of ours; one already reaped is not an error. */
  reap(pid: number): void;
  /** Wait for a process that is not our child to be gone: whether it went in time. */
  waitExit(pid: number, timeoutMs: number): boolean;
  /** prlimit(2); throws with errno. */
  prlimit(pid: number, resource: number, soft: bigint, hard: bigint): void;
  /** Become a child subreaper: what a helper forked is ours when the helper dies first. */
  adoptOrphans(): void;
  /** Children of ours that run the helper (tsrun-init) other than `except`: a dead helper's forks. */
  helperOrphans(except: number[]): number[];
}

export interface Platform {
  helper: HelperChannel;
  processes: ProcessControl;
  /** The cgroup managers: a new container's, and a recorded one's. */
  cgroups: {
    forConfig(config: Config, id: string, choice: ManagerChoice): CgroupManager;
    fromState(state: CgroupState): CgroupManager;
  };
  /** What the plan compiler asks about the host. */
  host: HostView;
  /** Write a /proc file of a process (uid_map, gid_map, setgroups). */
  writeProcFile(path: string, text: string): void;
  /** newuidmap or newgidmap (idmap.ts), for maps this user may not write itself. */
  runIdMapTool(tool: 'newuidmap' | 'newgidmap', args: string[]): void;
  /** The exec fifo: made at `path` (0600) and opened read-write: its fd. */
  makeFifo(path: string): number;
  /** An engine's --console-socket, connected: its fd. */
  connectConsole(socketPath: string): number;
  /** Close an fd the launch held (the fifo, the console, an image's rootfs). */
  closeFd(fd: number): void;
  /** Field 22 of /proc/<pid>/stat (state.ts processStartTime): tells our init from a recycled pid. */
  processStartTime(pid: number): string | null;
  /** Our effective uid and gid. */
  euid(): number;
  egid(): number;
  sleep(ms: number): void;
  /** A named step (crash.ts): the reliability tests kill tsrun there. */
  crashPoint(step: CrashStep): void;
  strerror(errno: number): string;
}

export const realPlatform: Platform = {
  helper: {
    spawn: (s) => native.spawnInit(INIT_HELPER, s.plan, s.fifoFd, s.consoleFd, s.rootfsFd, s.preserveFds, s.stdio),
    receive,
    send,
    close: (fd) => native.close(fd),
  },
  processes: {
    kill(pid, signal) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    },
    reap(pid) {
      try {
        native.waitPid(pid, false);
      } catch {
        // reaped elsewhere
      }
    },
    waitExit: (pid, timeoutMs) => native.waitExit(pid, timeoutMs),
    prlimit: (pid, resource, soft, hard) => native.prlimit(pid, resource, soft, hard),
    adoptOrphans: () => native.setSubreaper(),
    helperOrphans(except) {
      const children: number[] = [];
      for (const tid of fs.readdirSync('/proc/self/task')) {
        try {
          const list = fs.readFileSync(`/proc/self/task/${tid}/children`, 'utf8');
          children.push(...list.split(' ').filter(Boolean).map(Number));
        } catch {
          // a thread that ended meanwhile
        }
      }
      return children.filter((pid) => {
        if (except.includes(pid)) return false;
        try {
          return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tsrun-init';
        } catch {
          return false; // reaped meanwhile
        }
      });
    },
  },
  cgroups: { forConfig: cgroupManagerFor, fromState: cgroupManagerFrom },
  host: realHost,
  writeProcFile: (path, text) => fs.writeFileSync(path, text),
  runIdMapTool,
  makeFifo(path) {
    try {
      native.mkfifo(path, 0o600);
    } catch (err) {
      throw new TsrunError(`${path}: ${native.strerror((err as { errno: number }).errno).toLowerCase()}`);
    }
    return fs.openSync(path, fs.constants.O_RDWR);
  },
  connectConsole,
  closeFd: (fd) => native.close(fd),
  processStartTime,
  euid: () => process.geteuid?.() ?? 0,
  egid: () => process.getegid?.() ?? 0,
  sleep: sleepSync,
  crashPoint,
  strerror: (errno) => native.strerror(errno),
};

/** newuidmap/newgidmap from PATH, as runc finds them; what they said when they refuse. */
function runIdMapTool(tool: 'newuidmap' | 'newgidmap', args: string[]): void {
  const { spawnSync } = require('child_process') as typeof import('child_process');
  // Found on the caller's PATH, and given nothing else of tsrun's environment (runc's gets none): the tool is
  // setuid root, and what it needs to know is in its arguments.
  const PATH = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const run = spawnSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env: { PATH } });
  if (run.error) {
    const missing = (run.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TsrunError(
      missing
        ? `${tool} is not on PATH (${PATH}): Debian's uidmap package installs it; without it a user may map only its own id, one id`
        : `${tool}: ${run.error.message}`,
    );
  }
  if (run.status !== 0) {
    const said = run.stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    throw new TsrunError(`${tool} ${args.join(' ')} failed (${run.signal ?? `status ${run.status}`}): ${said}`);
  }
}
