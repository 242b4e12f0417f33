/**
 * How a new process (create's init, an exec's process) gets into the
 * container's cgroups: the one decision, made here from what the placement
 * manager offers and the process's user namespace; the plan compiler turns
 * it into ops and launch follows it.  Pure, so it is unit-tested.
 */

/** What a placement manager offers a new process (CgroupManager.targets). */
export interface CgroupTargets {
  /** cgroup v1: directories the helper can join itself, writing "0" to their tasks. */
  joins: string[];
  /** cgroup2: the directory a process can be cloned into (CLONE_INTO_CGROUP). */
  cloneInto?: string;
}

export interface ProcessPlacement {
  /** The helper joins these itself, first, before any namespace: "0" written to dir/file. */
  helperJoins: Array<{ dir: string; file: 'tasks' | 'cgroup.procs' }>;
  /** The cgroup2 directory the process is cloned into; '' for none. */
  cloneInto: string;
  /** The parent moves the helper into every cgroup before it runs an op. */
  parentMoves: boolean;
}

/**
 * The helper joins the v1 cgroups itself, first, before any namespace and
 * while it is still the host's root, by writing "0" to their tasks (a
 * thread moving itself takes no lock that waits for an RCU grace period);
 * the process is then cloned into the cgroup2 one (CLONE_INTO_CGROUP).
 * After a user namespace is entered the kernel no longer lets that clone
 * into a host cgroup, so there the helper joins the cgroup2 one first too,
 * through cgroup.procs.  `targets` undefined: the parent moves the helper
 * into every cgroup before it runs a single op (an exec into a paused
 * container, which must freeze there until resume, as runc's does).
 */
export function placeProcess(targets: CgroupTargets | undefined, inUserns: boolean): ProcessPlacement {
  if (!targets) return { helperJoins: [], cloneInto: '', parentMoves: true };
  const helperJoins: ProcessPlacement['helperJoins'] = targets.joins.map((dir) => ({ dir, file: 'tasks' }));
  const cgroup2 = targets.cloneInto;
  if (cgroup2 && inUserns) helperJoins.push({ dir: cgroup2, file: 'cgroup.procs' });
  return { helperJoins, cloneInto: cgroup2 && !inUserns ? cgroup2 : '', parentMoves: false };
}
