/**
 * The parent side of one launch: spawn tsrun-init with a plan, write the
 * cgroups' limits (the helper places itself in them, see OP_JOIN_CGROUP),
 * and answer its messages (native/plan.h draws the protocol)
 * until it reports READY.  create and exec both start processes this way.
 * If anything fails, the processes it started are killed and reaped before
 * the error leaves.
 */
import os = require('os');
import { type CgroupManager, type SubCgroups, tightestPidsLimit } from './cgroup/manager';
import { type LinuxResources } from './cgroup/resources';
import { TsrunError } from './errors';
import { debug } from './log';
import { type Platform, type ProcessControl, realPlatform } from './platform';
import { type ChildFailure, type ChildMessage, Sync } from './sync';

export interface LaunchOptions {
  /** Which verb launches: names its crash steps (crash.ts). */
  verb: 'create' | 'exec' | 'image';
  plan: Buffer;
  fifoFd: number;
  consoleFd: number;
  /** create from an image: the overlay as a detached mount, which the init attaches in its own mount namespace. */
  rootfsFd?: number;
  preserveFds: number;
  /** The container's cgroups: resources to write, and (see below) who joins them. */
  cgroup: CgroupManager | null;
  /**
   * cgroup/placement.ts's decision: the parent writes the helper's pid to
   * each cgroup.procs before the helper runs a single op (exec into a
   * paused container: the helper freezes there, as runc's init does, until
   * the container is resumed; nothing of it ever runs outside the
   * container's cgroups).  Otherwise the plan places the process itself:
   * the helper joins the v1 cgroups (OP_JOIN_CGROUP) and clones the
   * process into the cgroup2 one.
   */
  parentMoves?: boolean;
  /** Sub-cgroups of the container's to join instead (exec --cgroup). */
  subCgroup?: SubCgroups;
  /**
   * The process is in all of its cgroups: from here on, what the container
   * does to it (stop it, pause the cgroup) is the container's business, and
   * delete --force kills it with the rest.  exec lets go of the lock here.
   */
  onPlaced?(): void;
  /** linux.resources to write once the helper is placed (create only). */
  resources?: LinuxResources;
  /** The init exists, in its namespaces, and waits: the parent's work on them (linux.netDevices). */
  onInitPid?(pid: number): void;
  /** The process's fds 0-2, when not ours (a foreground run's or exec's pipes). */
  stdio?: [number, number, number];
  /** A user namespace was created: write its maps for this pid. */
  onUsernsReady?(pid: number): void;
  /** The launch failed with the init alive, before it is killed (what onInitPid did is undone here). */
  onFailure?(initPid: number): void;
  /** The init is set up up to pivot_root: run runtime hooks; returns the state for container hooks. */
  onRunHooks?(initPid: number): string;
  /** process.rlimits, set with prlimit(2) when the process asks (runc's procReady). */
  rlimits?: Array<{ resource: number; name: string; soft: bigint; hard: bigint; field: string }>;
  /** The process loaded a seccomp filter that notifies: hand its listener fd on. */
  onSeccompListener?(fd: number, pid: number): void;
  /** Turn a child's failure into the message the user reads. */
  describeFailure(f: ChildFailure): string;
}

/**
 * A launch that failed; `inHook` says a hook failed (runtime.md: poststop
 * still runs); `cloneRefused` that the kernel refused to clone the
 * process for now (EAGAIN: a pids limit or RLIMIT_NPROC is full).
 */
export class LaunchError extends TsrunError {
  constructor(
    message: string,
    readonly inHook: boolean,
    readonly cloneRefused = false,
  ) {
    super(message);
  }
}

/** A clone refused with EAGAIN is retried this many times, waiting 2, 4, ... 512 ms (about a second in all). */
const CLONE_TRIES = 10;

export function killAndReap(pid: number, ourChild: boolean, processes: ProcessControl = realPlatform.processes): void {
  processes.kill(pid, 'SIGKILL');
  if (ourChild) processes.reap(pid);
  else processes.waitExit(pid, 10_000);
}

function setRlimits(pid: number, rlimits: NonNullable<LaunchOptions['rlimits']>, platform: Platform): void {
  for (const r of rlimits) {
    try {
      platform.processes.prlimit(pid, r.resource, r.soft, r.hard);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new TsrunError(
        `${r.field}: set ${r.name} to ${r.soft}/${r.hard}: ${platform.strerror(Number(e.errno ?? 0)).toLowerCase()}`,
      );
    }
  }
}

/**
 * Run the plan until its process is READY; returns that process's pid (a
 * child of ours).  When the clone of the process is refused for now
 * (EAGAIN), processes of a full cgroup may be about to exit: the whole
 * launch is tried again from a new helper, for about a second.  Not the
 * clone alone: a new pid namespace whose first process failed to be born
 * takes no other (the kernel answers ENOMEM), and nothing else has been
 * done by then that a new helper would not do again (the clone comes
 * before any mount or hook).
 */
export function launch(opts: LaunchOptions, platform: Platform = realPlatform): number {
  for (let attempt = 1; ; attempt++) {
    try {
      return launchOnce(opts, platform);
    } catch (err) {
      if (!(err instanceof LaunchError && err.cloneRefused) || attempt === CLONE_TRIES) throw err;
      const ms = 1 << attempt;
      debug(`${err.message}; trying again in ${ms} ms`);
      platform.sleep(ms);
    }
  }
}

/** The OOM killer's count in the cgroup so far (-1 when it cannot be read). */
function oomKillsOf(cgroup: CgroupManager | null): number {
  try {
    return cgroup ? cgroup.oomKills() : -1;
  } catch {
    return -1;
  }
}

/**
 * Why a process died before it was ready, when the cgroup says: the OOM
 * killer struck since the launch began (`before`: its count then; the
 * count is the cgroup's whole history, an exec's container may have had
 * others), so the memory limit is below what the helper and the process
 * need to start (runc names the limit too).  '' when it was not.
 */
function oomCause(cgroup: CgroupManager | null, before: number): string {
  // (The cgroup's own limit and peak tell nothing here: the kernel rounds a
  // tiny limit down to 0 pages, and the dead process's pages are uncharged.)
  const now = oomKillsOf(cgroup);
  return before >= 0 && now > before
    ? ": the kernel's OOM killer ended it: linux.resources.memory.limit is too small for it to start"
    : '';
}

/**
 * The helper's next message.  While the container is paused its process
 * is frozen with it and says nothing: that wait has no end (runc's exec
 * into a paused container waits for resume too); otherwise SYNC_TIMEOUT_MS.
 */

function nextMessage(syncFd: number, cgroup: CgroupManager | null, platform: Platform): ChildMessage {
  for (;;) {
    try {
      return platform.helper.receive(syncFd);
    } catch (err) {
      if ((err as { errno?: number }).errno !== os.constants.errno.ETIMEDOUT || !cgroup?.isFrozen()) throw err;
    }
  }
}

function launchOnce(opts: LaunchOptions, platform: Platform): number {
  const { helper, processes } = platform;
  let helperPid = 0;
  let initPid = 0;
  let syncFd = -1;
  let inHook = false;
  let cloneRefused = false;
  const oomBefore = oomKillsOf(opts.cgroup);
  // A process the helper forks (the mount-source server) outlives a helper killed on failure: as a subreaper,
  // tsrun gets it and can reap it, where an init that reaps nothing (a container's) would keep it a zombie.
  processes.adoptOrphans();
  try {
    ({ pid: helperPid, syncFd } = helper.spawn({
      plan: opts.plan,
      fifoFd: opts.fifoFd,
      consoleFd: opts.consoleFd,
      rootfsFd: opts.rootfsFd ?? -1,
      preserveFds: opts.preserveFds,
      stdio: opts.stdio ?? null,
    }));
    debug(`${opts.verb}: tsrun-init ${helperPid} started, plan of ${opts.plan.length} bytes`);
    if (opts.parentMoves && opts.cgroup) {
      opts.cgroup.apply(helperPid, opts.subCgroup);
      opts.onPlaced?.();
    }
    if (opts.resources) opts.cgroup?.set(opts.resources);
    helper.send(syncFd, Sync.CONTINUE);
    for (;;) {
      const msg = nextMessage(syncFd, opts.cgroup, platform);
      debug(
        `${opts.verb}: ${Sync[msg.type as number] ?? msg.type} from tsrun-init${msg.type === Sync.INIT_PID || msg.type === Sync.USERNS_READY ? ` (pid ${msg.pid})` : ''}`,
      );
      if (msg.type === Sync.USERNS_READY) {
        opts.onUsernsReady?.(msg.pid);
        helper.send(syncFd, Sync.MAPS_WRITTEN);
      } else if (msg.type === Sync.INIT_PID) {
        initPid = msg.pid;
        processes.reap(helperPid);
        helperPid = 0;
        if (!opts.parentMoves) opts.onPlaced?.(); // cloned into (or inheriting) every cgroup
        platform.crashPoint(`${opts.verb}:cloned`); // the process is in its namespaces, nothing mounted yet
        opts.onInitPid?.(initPid);
        helper.send(syncFd, Sync.CONTINUE);
      } else if (msg.type === Sync.RUN_HOOKS) {
        inHook = true;
        const state = opts.onRunHooks?.(initPid) ?? '{}';
        inHook = false;
        helper.send(syncFd, Sync.HOOKS_DONE, state);
      } else if (msg.type === Sync.SET_RLIMITS) {
        setRlimits(initPid, opts.rlimits ?? [], platform);
        helper.send(syncFd, Sync.CONTINUE);
      } else if (msg.type === Sync.SECCOMP_LISTENER) {
        try {
          if (!opts.onSeccompListener)
            throw new TsrunError('linux.seccomp: a listener fd arrived, but nothing takes it');
          opts.onSeccompListener(msg.fd, initPid);
        } finally {
          helper.close(msg.fd);
        }
        helper.send(syncFd, Sync.CONTINUE);
      } else if (msg.type === Sync.READY) {
        return initPid;
      } else if (msg.type === Sync.ERROR) {
        inHook = msg.failure.step === 'hook';
        let message = opts.describeFailure(msg.failure);
        // It exits after telling us; once reaped it no longer counts against a pids limit.
        if (helperPid) killAndReap(helperPid, true, processes);
        helperPid = 0;
        cloneRefused = msg.failure.step === 'clone' && msg.failure.errno === os.constants.errno.EAGAIN;
        // Say which limit stood in the way.
        const limit = cloneRefused && opts.cgroup && tightestPidsLimit(opts.cgroup.describe());
        if (limit) message += ` (${limit})`;
        throw new TsrunError(message);
      } else {
        throw new TsrunError(`the container process exited before it was ready${oomCause(opts.cgroup, oomBefore)}`);
      }
    }
  } catch (err) {
    if (initPid) {
      opts.onFailure?.(initPid);
      killAndReap(initPid, true, processes);
    }
    if (helperPid) killAndReap(helperPid, true, processes);
    // The helper's forks, now ours (adoptOrphans).  One stuck on a slow filesystem is not waited for long.
    for (const orphan of processes.helperOrphans([initPid])) {
      processes.kill(orphan, 'SIGKILL');
      if (processes.waitExit(orphan, 2000)) processes.reap(orphan);
    }
    if (err instanceof TsrunError) throw new LaunchError(err.message, inHook, cloneRefused);
    throw err;
  } finally {
    if (syncFd >= 0) helper.close(syncFd);
  }
}
