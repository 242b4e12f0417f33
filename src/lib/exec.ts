/**
 * exec: start another process in a running container.  It joins every
 * namespace of the container's init that differs from ours, the init's
 * cgroups, and gets the process set-up the init got, through the same
 * helper (so its /proc/<pid>/exe is the sealed memfd, never a host file).
 */
import fs = require('fs');
import { type SubCgroups } from './cgroup/manager';
import { type Process } from './config';
import { inUserNamespace } from './host';
import { hostIdOf, parseIdMap } from './idmap';
import { waitAttached, writePidFile } from './process-io';
import { StdioPipes } from './stdio-pipes';
import { TsrunError } from './errors';
import { launch, type LaunchOptions } from './launch';
import { checkLsmRequests } from './lsm';
import { JOIN_ORDER, NAMESPACES, ownNamespace, sameNamespace } from './namespaces';
import { Rollback } from './rollback';
import { type Platform, realPlatform } from './platform';
import { compileExecPlan, type InitNamespaces, processRlimits } from './plan';
import { loadableSeccomp, normalizeSeccomp, type SeccompFilter, sendSeccompListener } from './seccomp';
import { encodePlan } from './plan-format';
import { type ContainerRecord, type StateStore } from './state';
import { containerStatus, shownStatus } from './status';
import { ConsoleProxy, hostTerminalProblem } from './terminal';

export interface ExecOptions {
  id: string;
  process: Process;
  consoleSocket?: string;
  pidFile?: string;
  detach: boolean;
  preserveFds: number;
  ignorePaused: boolean;
  /** exec --cgroup: sub-cgroups of the container's, for all controllers or per controller. */
  subCgroup?: SubCgroups;
}

/** The init's namespaces that are not ours: joining our own user namespace is an error. */
export function initNamespaces(pid: number): InitNamespaces {
  const differing: InitNamespaces['differing'] = {};
  for (const type of JOIN_ORDER) {
    const theirs = `/proc/${pid}/ns/${NAMESPACES[type].file}`;
    // null: the kernel lacks this namespace type
    if (sameNamespace(theirs, ownNamespace(type)) === false) differing[type] = theirs;
  }
  // Our mount namespace, another root: a container without a mount
  // namespace of its own, whose root is a chroot.  The exec goes into that
  // root (runc's exec stays in the host's root there).
  if (!differing.mount) {
    try {
      const theirs = fs.statSync(`/proc/${pid}/root`);
      const ours = fs.statSync('/');
      if (theirs.ino !== ours.ino || theirs.dev !== ours.dev) return { differing, root: `/proc/${pid}/root` };
    } catch {
      // gone: the launch will say so
    }
  }
  return { differing };
}

/**
 * launch(), but when the container stopped while this exec was being set
 * up (a delete --force, its init exiting), say that rather than what the
 * kernel answered the helper (a clone into the pid namespace of a dead init
 * fails with ENOMEM).
 */
function launchOrStopped(store: StateStore, record: ContainerRecord, opts: LaunchOptions, platform: Platform): number {
  try {
    return launch(opts, platform);
  } catch (err) {
    if (err instanceof TsrunError && containerStatus(store, record, platform.cgroups.fromState) === 'stopped')
      throw new TsrunError('cannot exec in a stopped container');
    throw err;
  }
}

/**
 * An exec --process file that leaves out the scheduler, the I/O priority
 * or execCPUAffinity gets the container's own, as runc's exec does (its
 * newInitConfig starts from the container's and lets the process override).
 */
function withContainerDefaults(process: Process, container: Process | undefined): Process {
  return {
    ...process,
    scheduler: process.scheduler ?? container?.scheduler,
    ioPriority: process.ioPriority ?? container?.ioPriority,
    execCPUAffinity: process.execCPUAffinity ?? container?.execCPUAffinity,
  };
}

/**
 * A user's container whose own gid map denies setgroups (idmap.ts) takes
 * no additional gid: said naming the flag, before anything is made, as
 * runc refuses them in a rootless exec.
 */
function refuseDeniedGroups(initPid: number, process: Process): void {
  if (!process.user?.additionalGids?.length) return;
  let setgroups = '';
  try {
    setgroups = fs.readFileSync(`/proc/${initPid}/setgroups`, 'utf8').trim();
  } catch {
    return; // gone: the launch says so
  }
  if (setgroups === 'deny')
    throw new TsrunError(
      "--additional-gids: setgroups is denied in the container's user namespace (a user's own gid map); no additional gid can be set",
    );
}

export async function exec(store: StateStore, opts: ExecOptions, platform: Platform = realPlatform): Promise<number> {
  checkLsmRequests({
    apparmor: { 'process.apparmorProfile': opts.process.apparmorProfile },
    selinux: { 'process.selinuxLabel': opts.process.selinuxLabel },
  });
  // Held from the status check until the process is in all of the
  // container's cgroups, so a pause or delete cannot come in between (a
  // deleted cgroup could not be joined).  Released then (launch's
  // onPlaced): the rest of the set-up runs in the container's pid namespace,
  // where the container could stop it, and no other verb may wait on that.
  let lockFd = store.lock(opts.id);
  const unlock = (): void => {
    if (lockFd >= 0) store.unlock(lockFd);
    lockFd = -1;
  };
  try {
    return await execLocked(store, opts, unlock, platform);
  } finally {
    unlock();
  }
}

async function execLocked(
  store: StateStore,
  opts: ExecOptions,
  unlock: () => void,
  platform: Platform,
): Promise<number> {
  const record = store.load(opts.id);
  const status = containerStatus(store, record, platform.cgroups.fromState);
  if (status === 'stopped') throw new TsrunError('cannot exec in a stopped container');
  if (status === 'paused' && !opts.ignorePaused)
    throw new TsrunError('cannot exec in a paused container (use --ignore-paused)');
  if (opts.consoleSocket && !opts.process.terminal)
    throw new TsrunError('--console-socket: the process has no terminal (give --tty)');
  if (opts.consoleSocket && !opts.detach)
    throw new TsrunError('--console-socket: needs --detach (in the foreground, exec attaches the terminal itself)');
  const wantsProxy = !!opts.process.terminal && !opts.consoleSocket;
  if (wantsProxy && opts.detach)
    throw new TsrunError('--tty: a detached exec needs --console-socket to get a terminal');
  refuseDeniedGroups(record.pid, opts.process);
  const cgroup = platform.cgroups.fromState(record.cgroup);
  // Paused: the parent puts the helper into every cgroup before it runs an
  // op, so it freezes there until resume and its process inherits them all
  // (placed any later, what the process forks first would stay outside).
  // Otherwise the helper joins the v1 cgroups itself and clones the process
  // into the cgroup2 one, where the kernel allows.
  const placedByParent = status === 'paused';
  const targets = placedByParent ? undefined : cgroup.targets(opts.subCgroup);
  const filter: SeccompFilter | undefined = record.seccomp ? normalizeSeccomp(record.seccomp) : undefined;
  const rlimits = processRlimits(opts.process);
  const seccomp = filter && loadableSeccomp(filter, store);
  const plan = encodePlan(
    compileExecPlan(withContainerDefaults(opts.process, record.process), initNamespaces(record.pid), {
      cgroupTargets: targets,
      seccomp,
      container: record.processAttrs,
    }),
  );

  const noTerminal = wantsProxy ? hostTerminalProblem() : undefined;
  if (noTerminal) throw new TsrunError(`--tty: ${noTerminal}`);
  const proxy = wantsProxy ? new ConsoleProxy() : undefined;
  // In the foreground without a terminal, pipes of its own, as runc's (stdio-pipes.ts).
  const pipes = !opts.detach && !proxy ? new StdioPipes() : undefined;
  // What the launch holds, let go of once it is over, as create's stages do (rollback.ts).
  const held = new Rollback();
  let consoleFd = -1;
  try {
    if (pipes) giveToContainerRoot(pipes, record.pid);
    pipes?.start();
    const socketPath = proxy?.socketPath ?? opts.consoleSocket;
    if (opts.process.terminal && socketPath) {
      consoleFd = platform.connectConsole(socketPath);
      held.always('close the console socket', () => platform.closeFd(consoleFd));
    }
    const pid = launchOrStopped(
      store,
      record,
      {
        verb: 'exec',
        plan,
        fifoFd: -1,
        consoleFd,
        preserveFds: opts.preserveFds,
        stdio: pipes?.child,
        cgroup,
        parentMoves: targets === undefined,
        subCgroup: opts.subCgroup,
        onPlaced: unlock,
        rlimits,
        onSeccompListener: (fd, pid) =>
          sendSeccompListener(
            filter!,
            fd,
            pid,
            store.ociState(record, shownStatus(store, record, platform.cgroups.fromState)),
          ),
        describeFailure: (f) => `${f.detail}: ${platform.strerror(f.errno).toLowerCase()}`,
      },
      platform,
    );
    platform.crashPoint('exec:launched');
    unlock();
    held.release(); // the process has its own copy of the console
    if (opts.pidFile) writePidFile(opts.pidFile, pid);
    pipes?.launched();
    proxy?.attach();
    if (opts.detach) return 0;
    const code = await waitAttached(pid, !!proxy);
    await pipes?.close(); // its output is all out before exec returns, as runc's
    return code;
  } finally {
    held.release();
    await proxy?.close();
    await pipes?.close();
  }
}

/**
 * Root execing into a container with a user namespace of its own: the
 * pipes go to the ids its root has on the host (read from the init's
 * maps), as runc's do, so the process may reopen them there.
 */
function giveToContainerRoot(pipes: StdioPipes, initPid: number): void {
  if (process.geteuid?.() !== 0) return;
  let uidMap: string;
  let gidMap: string;
  try {
    uidMap = fs.readFileSync(`/proc/${initPid}/uid_map`, 'utf8');
    gidMap = fs.readFileSync(`/proc/${initPid}/gid_map`, 'utf8');
  } catch {
    return; // the init is gone: the launch says so
  }
  if (!inUserNamespace(() => uidMap)) return; // the host's user namespace
  const uid = hostIdOf(parseIdMap(uidMap), 0);
  const gid = hostIdOf(parseIdMap(gidMap), 0);
  if (uid !== undefined && gid !== undefined) pipes.giveTo(uid, gid);
}
