/**
 * The parent side of one launch: spawn tsrun-init with a plan, write the
 * cgroups' limits (the helper places itself in them, see OP_JOIN_CGROUP),
 * and answer its messages (native/plan.h draws the protocol)
 * until it reports READY.  create and exec both start processes this way.
 * If anything fails, the processes it started are killed and reaped before
 * the error leaves.
 */
import fs = require('fs');
import { CgroupManager } from './cgroup/manager';
import { TsrunError } from './errors';
import { INIT_HELPER, native } from './native';
import { ChildFailure, receive, send, Sync } from './sync';

export interface LaunchOptions {
  plan: Buffer;
  fifoFd: number;
  consoleFd: number;
  preserveFds: number;
  /** The container's cgroups: resources to write, and (see below) who joins them. */
  cgroup: CgroupManager | null;
  /**
   * The plan places the process itself: the helper joins the v1 cgroups
   * (OP_JOIN_CGROUP) and clones the process into the cgroup2 one.
   * Otherwise the parent writes the helper's pid to each cgroup.procs.
   */
  helperJoinsCgroups?: boolean;
  /** A sub-cgroup of the container's to join instead (exec --cgroup). */
  subCgroup?: string;
  /** Join the cgroups only once the process is READY: a frozen cgroup would freeze its set-up. */
  joinCgroupWhenReady?: boolean;
  /** linux.resources to write once the helper is placed (create only). */
  resources?: Record<string, unknown>;
  /** A user namespace was created: write its maps for this pid. */
  onUsernsReady?(pid: number): void;
  /** The init is set up up to pivot_root: run runtime hooks; returns the state for container hooks. */
  onRunHooks?(initPid: number): string;
  /** process.rlimits, set with prlimit(2) when the process asks (runc's procReady). */
  rlimits?: Array<{ resource: number; name: string; soft: bigint; hard: bigint; field: string }>;
  /** The process loaded a seccomp filter that notifies: hand its listener fd on. */
  onSeccompListener?(fd: number, pid: number): void;
  /** Turn a child's failure into the message the user reads. */
  describeFailure(f: ChildFailure): string;
}

/** A launch that failed; `inHook` says a hook failed (runtime.md: poststop still runs). */
export class LaunchError extends TsrunError {
  constructor(message: string, readonly inHook: boolean) {
    super(message);
  }
}

export function killAndReap(pid: number, ourChild: boolean): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  if (ourChild) {
    try {
      native.waitPid(pid, false);
    } catch {
      // reaped elsewhere
    }
  } else {
    native.waitExit(pid, 10_000);
  }
}

function setRlimits(pid: number, rlimits: NonNullable<LaunchOptions['rlimits']>): void {
  for (const r of rlimits) {
    try {
      native.prlimit(pid, r.resource, r.soft, r.hard);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new TsrunError(`${r.field}: set ${r.name} to ${r.soft}/${r.hard}: ${native.strerror(Number(e.errno ?? 0)).toLowerCase()}`);
    }
  }
}

/** Run the plan until its process is READY; returns that process's pid (a child of ours). */
export function launch(opts: LaunchOptions): number {
  let helperPid = 0;
  let initPid = 0;
  let syncFd = -1;
  let inHook = false;
  try {
    ({ pid: helperPid, syncFd } = native.spawnInit(INIT_HELPER, opts.plan, opts.fifoFd, opts.consoleFd, opts.preserveFds));
    if (!opts.joinCgroupWhenReady && !opts.helperJoinsCgroups) opts.cgroup?.apply(helperPid, opts.subCgroup);
    if (opts.resources) opts.cgroup?.set(opts.resources);
    send(syncFd, Sync.CONTINUE);
    for (;;) {
      const msg = receive(syncFd);
      if (msg.type === Sync.USERNS_READY) {
        opts.onUsernsReady?.(msg.pid);
        send(syncFd, Sync.MAPS_WRITTEN);
      } else if (msg.type === Sync.INIT_PID) {
        initPid = msg.pid;
        native.waitPid(helperPid, false);
        helperPid = 0;
        send(syncFd, Sync.CONTINUE);
      } else if (msg.type === Sync.RUN_HOOKS) {
        inHook = true;
        const state = opts.onRunHooks?.(initPid) ?? '{}';
        inHook = false;
        send(syncFd, Sync.HOOKS_DONE, state);
      } else if (msg.type === Sync.SET_RLIMITS) {
        setRlimits(initPid, opts.rlimits ?? []);
        send(syncFd, Sync.CONTINUE);
      } else if (msg.type === Sync.SECCOMP_LISTENER) {
        try {
          if (!opts.onSeccompListener) throw new TsrunError('linux.seccomp: a listener fd arrived, but nothing takes it');
          opts.onSeccompListener(msg.fd, initPid);
        } finally {
          native.close(msg.fd);
        }
        send(syncFd, Sync.CONTINUE);
      } else if (msg.type === Sync.READY) {
        if (opts.joinCgroupWhenReady) opts.cgroup?.apply(initPid, opts.subCgroup);
        return initPid;
      } else if (msg.type === Sync.ERROR) {
        inHook = msg.failure.step === 'hook';
        throw new TsrunError(opts.describeFailure(msg.failure));
      } else {
        throw new TsrunError('the container process exited before it was ready');
      }
    }
  } catch (err) {
    if (initPid) killAndReap(initPid, true);
    if (helperPid) killAndReap(helperPid, true);
    if (err instanceof TsrunError) throw new LaunchError(err.message, inHook);
    throw err;
  } finally {
    if (syncFd >= 0) fs.closeSync(syncFd);
  }
}
