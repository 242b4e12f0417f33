/**
 * The verbs that act on an existing container through its state and its
 * cgroups alone: state, list, kill, pause, resume, ps and update.  Apart
 * from container.ts (create, start, run, delete), so these load nothing of
 * the launch machinery: they are the ones engines call most often.
 */
import { TsrunError, describeFsError } from './errors';
import { cgroupManagerFrom } from './cgroup';
import { NoCgroupError, RootlessCgroup } from './cgroup/rootless';
import { warn } from './log';
import { type LinuxResources } from './cgroup/resources';
import { type OciState, type StateStore } from './state';
import { containerStatus, sharedCgroupsFrom, shownStatus } from './status';

export function state(store: StateStore, id: string): OciState {
  const record = store.load(id);
  return store.ociState(record, shownStatus(store, record));
}

export function list(store: StateStore): OciState[] {
  const out: OciState[] = [];
  const cgroups = sharedCgroupsFrom();
  for (const id of store.list()) {
    try {
      const record = store.load(id);
      out.push(store.ociState(record, shownStatus(store, record, cgroups)));
    } catch {
      // deleted while we listed
    }
  }
  return out;
}

export function kill(store: StateStore, id: string, signal: number, all: boolean): void {
  const record = store.load(id);
  const status = containerStatus(store, record);
  if (status === 'stopped') {
    // runc's words: containerd's shim takes an error holding "container not running" as "already gone" (go-runc's
    // checkKillError); any other wording fails its StopContainer after a kill that raced the exit.
    if (!all) throw new TsrunError('container not running');
    killLeftovers(record.cgroup, signal);
    return;
  }
  const cgroup = cgroupManagerFrom(record.cgroup);
  let initOnly = !all;
  if (all) {
    try {
      cgroup.killAll(signal);
    } catch (err) {
      if (!(err instanceof NoCgroupError)) throw err;
      // runc 1.4 the same: a user's container without a cgroup gets the signal at its init.
      warn(`${err.message}; the signal goes to the init alone`);
      initOnly = true;
    }
  }
  if (initOnly) {
    try {
      process.kill(record.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH')
        throw new TsrunError(describeFsError(err, `kill ${record.pid}`));
    }
  }
  // A frozen process dies only once thawed: SIGKILL to a paused container
  // thaws it, as runc does, so it does not stay paused and alive.
  if (signal === SIGKILL && status === 'paused') cgroup.thaw();
}

const SIGKILL = 9;

/**
 * kill --all of a stopped container, as runc's: what is left in its cgroup
 * gets the signal, and none left (or no cgroup) is no error.  Processes
 * outlive the init where the container shares a pid namespace (a pod's
 * with shareProcessNamespace, or the host's); containerd's shim sends
 * SIGKILL to --all after every exit of such a container to end them.
 */
function killLeftovers(described: Parameters<typeof cgroupManagerFrom>[0], signal: number): void {
  const cgroup = cgroupManagerFrom(described);
  let left: number[];
  try {
    left = cgroup.pids();
  } catch {
    return; // no cgroup of its own (rootless without delegation): nothing to find
  }
  if (left.length) cgroup.killAll(signal);
}

/** pause: freeze every process of the container. */
export function pause(store: StateStore, id: string): void {
  store.withLock(id, () => {
    const record = store.load(id);
    const status = containerStatus(store, record);
    if (status !== 'running' && status !== 'created')
      throw new TsrunError(`cannot pause a container in the ${status} state`);
    cgroupManagerFrom(record.cgroup).freeze();
  });
}

/** resume: thaw a paused container. */
export function resume(store: StateStore, id: string): void {
  store.withLock(id, () => {
    const record = store.load(id);
    const status = containerStatus(store, record);
    if (status !== 'paused') throw new TsrunError(`cannot resume a container in the ${status} state`);
    cgroupManagerFrom(record.cgroup).thaw();
  });
}

/** The host pids of the container's processes. */
export function pids(store: StateStore, id: string): number[] {
  const cgroup = cgroupManagerFrom(store.load(id).cgroup);
  if (cgroup instanceof RootlessCgroup && cgroup.absent)
    throw new NoCgroupError(
      'the container has no cgroup to find its processes in (rootless, no cgroup delegated to this user)',
    );
  return cgroup.pids();
}

/** update: write new resource limits to a live container's cgroups. */
export function update(store: StateStore, id: string, resources: LinuxResources): void {
  store.withLock(id, () => {
    const record = store.load(id);
    const status = containerStatus(store, record);
    if (status === 'stopped') throw new TsrunError('cannot update a stopped container');
    cgroupManagerFrom(record.cgroup).update(resources);
  });
}
