/**
 * A container's live status: what its init process, its exec fifo, its
 * cgroup's freezer and its lock say now.  Apart from the state store
 * (state.ts), which only stores: the store knows files, this knows
 * processes and cgroups.
 */
import fs = require('fs');
import { cgroupManagerFrom } from './cgroup';
import { type CgroupManager, type CgroupState, readHierarchies } from './cgroup/manager';
import { type ContainerRecord, processStartTime, type StateStore, type Status, waitingToStart } from './state';

/** How a recorded container's cgroup manager is rebuilt (a test's fake, or a list's shared reading of mountinfo). */
export type CgroupsFrom = (state: CgroupState) => CgroupManager;

/** The live status, from the init process and the exec fifo. */
export function containerStatus(
  store: StateStore,
  record: ContainerRecord,
  cgroups: CgroupsFrom = cgroupManagerFrom,
): Status {
  if (!record.pid || processStartTime(record.pid) !== record.initStartTime) return 'stopped';
  // Frozen first: a created container can be paused too (runc shows it
  // paused, and resume takes it back to created).
  if (cgroups(record.cgroup).isFrozen()) return 'paused';
  // The fifo goes once start has released the init; a start killed in between leaves it behind.
  if (fs.existsSync(store.fifoPath(record.id)) && waitingToStart(record.pid)) return 'created';
  return 'running';
}

/**
 * What `state` and `list` show: a record without an init (pid 0) is a
 * create still under way while its tsrun holds the lock ("creating"),
 * otherwise one that died half-way ("stopped": delete --force cleans it).
 */
export function shownStatus(
  store: StateStore,
  record: ContainerRecord,
  cgroups: CgroupsFrom = cgroupManagerFrom,
): Status {
  return record.pid === 0 && store.lockHeld(record.id) ? 'creating' : containerStatus(store, record, cgroups);
}

/** For `list`: mountinfo read once for all the containers, not once each. */
export function sharedCgroupsFrom(): CgroupsFrom {
  let hierarchies: ReturnType<typeof readHierarchies> | undefined;
  // Read at the first container that needs it: an empty list reads nothing.
  return (state) => cgroupManagerFrom(state, (hierarchies ??= readHierarchies()));
}
