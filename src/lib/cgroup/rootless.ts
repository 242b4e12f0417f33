/**
 * cgroups for an unprivileged user (--rootless; "auto" is so for any user
 * but root), as runc's rootless cgroup manager treats them: a hierarchy
 * where the user may not make (or join) the container's cgroup is left
 * out instead of failing the create, as long as nothing needs it.  A limit
 * that needs a hierarchy left out, pause without a freezer, and the like
 * fail naming what is missing and how to provide it (a cgroup delegated
 * to the user; the user's systemd manager is not supported yet).
 *
 * Decided before anything is made, from access(2) on the directories:
 * the container's own where it exists, else the nearest existing parent,
 * where the cgroup would be made.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { debug, warn } from '../log';
import {
  Cgroup,
  type CgroupState,
  type Hierarchy,
  type HierarchyDir,
  MissingControllerError,
  type Placement,
  type SubCgroups,
  type VersionWriter,
} from './manager';
import { type CgroupTargets } from './placement';
import { type LinuxResources } from './resources';

/**
 * Whether this user may make or join the cgroup at `dir` (below
 * `mountPoint`); `from`: the directory the caller is in there.
 */
export type MayUseCgroup = (mountPoint: string, dir: string, version: 1 | 2, from?: string) => boolean;

export const hostMayUseCgroup: MayUseCgroup = (mountPoint, dir, version, from) => {
  // cgroup v2 moves a process only for a writer who may write cgroup.procs of
  // the common ancestor of where it is and where it goes (cgroup-v2.rst,
  // "Delegation Containment"): checked here, or clone3 fails later with a bare EACCES.
  if (version === 2 && from !== undefined && !writable(path.join(commonAncestor(from, dir), 'cgroup.procs')))
    return false;
  const join = path.join(dir, version === 2 ? 'cgroup.procs' : 'tasks');
  if (fs.existsSync(dir)) return writable(join);
  // Made by the user: the nearest directory that exists must let it in.
  let parent = path.dirname(dir);
  while (parent.length > mountPoint.length && !fs.existsSync(parent)) parent = path.dirname(parent);
  return writable(parent, fs.constants.W_OK | fs.constants.X_OK);
};

/** The deepest directory holding both (absolute paths). */
export function commonAncestor(a: string, b: string): string {
  const x = a.split('/').filter(Boolean);
  const y = b.split('/').filter(Boolean);
  let n = 0;
  while (n < x.length && n < y.length && x[n] === y[n]) n++;
  return `/${x.slice(0, n).join('/')}`;
}

function writable(file: string, mode = fs.constants.W_OK): boolean {
  try {
    fs.accessSync(file, mode);
    return true;
  } catch {
    return false;
  }
}

/**
 * The hierarchies a user's container keeps, and what the ones left out
 * would have given; `from`: the caller's directory in each, by mount point.
 */
export function splitUsable(
  dirs: HierarchyDir[],
  mayUse: MayUseCgroup,
  from: Record<string, string> = {},
): { usable: HierarchyDir[]; leftOut: HierarchyDir[] } {
  const usable: HierarchyDir[] = [];
  const leftOut: HierarchyDir[] = [];
  for (const h of dirs) (mayUse(h.mountPoint, h.dir, h.version, from[h.mountPoint]) ? usable : leftOut).push(h);
  return { usable, leftOut };
}

/** How to give a user a cgroup, said with every refusal. */
const REMEDY = 'an administrator may delegate one to this user (chown it)';

/** What needs a cgroup the container has not got: ps, kill --all, events --stats. */
export class NoCgroupError extends TsrunError {}

/** The first field of linux.resources that asks for anything (runc's needAnyControllers), devices aside. */
export function firstRequestedResource(resources: LinuxResources | undefined): string | undefined {
  if (!resources) return undefined;
  for (const [key, value] of Object.entries(resources)) if (key !== 'devices' && asksForSomething(value)) return key;
  return undefined;
}

function asksForSomething(v: unknown): boolean {
  if (v === undefined || v === null || v === 0 || v === '' || v === false) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.values(v).some(asksForSomething);
  return true;
}

/** The placement of a container with no cgroup at all: nothing made, joined or removed. */
class NoPlacement implements Placement {
  constructor(private readonly driver: 'v1' | 'v2') {}
  create(): void {}
  destroy(): void {}
  describe(): CgroupState {
    return { driver: this.driver, paths: {} };
  }
  hierarchyDirs(): HierarchyDir[] {
    return [];
  }
  targets(sub?: SubCgroups): CgroupTargets {
    if (sub) warn("--cgroup: the container has no cgroup (rootless): the process stays in its caller's, as with runc");
    return { joins: [] };
  }
  apply(): void {}
  /**
   * None known: the lifecycle kills the init, and with it its pid namespace
   * (without one of the container's own, create warned that the rest may outlive it).
   */
  pids(): number[] {
    return [];
  }
}

/** The controller a linux.resources field needs, by its key (v1's names; one tree on v2). */
const CONTROLLER_OF: Record<string, string> = {
  memory: 'memory',
  cpu: 'cpu',
  pids: 'pids',
  blockIO: 'blkio',
  hugepageLimits: 'hugetlb',
  network: 'net_cls',
  rdma: 'rdma',
};

/** The writer of a container with no cgroup: what would need one fails saying why there is none. */
class NoWriter implements VersionWriter {
  readonly devicesInSteps = false;
  constructor(private readonly leftOut: HierarchyDir[]) {}
  private why(controller: string): string {
    return whyLeftOut(this.leftOut.filter((h) => h.controllers.includes(controller)).concat(this.leftOut));
  }
  set(resources: LinuxResources | undefined): void {
    const asked = firstRequestedResource(resources);
    if (asked) {
      const controller = CONTROLLER_OF[asked] ?? '';
      throw new MissingControllerError(controller, `linux.resources.${asked}`, this.why(controller));
    }
  }
  freeze(): void {
    throw new MissingControllerError('freezer', 'pause', this.why('freezer'));
  }
  thaw(): void {
    throw new MissingControllerError('freezer', 'resume', this.why('freezer'));
  }
  isFrozen(): boolean {
    return false;
  }
  killAll(): void {
    throw new NoCgroupError(`kill --all: the container has no cgroup to find its processes in (${whyLeftOut([])})`);
  }
  stats(): Record<string, unknown> {
    throw new NoCgroupError(`events --stats: the container has no cgroup to read (${whyLeftOut([])})`);
  }
  oomKills(): number {
    return 0;
  }
}

/**
 * A user's container's cgroups: those it may use, the rest left out (all
 * of them: NoPlacement and NoWriter).  A write that needs one left out
 * fails naming the directory the user may not use; device rules are left
 * out, as runc's rootless manager leaves them: the user cannot load a
 * device filter, and every node such a container has is one the user may
 * open already (bound from the host, never made).
 */
export class RootlessCgroup extends Cgroup {
  constructor(
    placement: Placement,
    writer: VersionWriter,
    replaced: readonly string[],
    /** The hierarchies left out, with the directory each would have had. */
    private readonly leftOut: HierarchyDir[],
    /** Where the caller is, by mount point: read once, when first asked. */
    callerDirs: () => Record<string, string>,
    private readonly mayUse: MayUseCgroup,
    /** Rebuilt from state.json: its cgroups exist, and a move refused is a process joining from outside. */
    private readonly recorded = false,
  ) {
    super(placement, writer, replaced);
    let dirs: Record<string, string> | undefined;
    this.callerDirs = () => (dirs ??= callerDirs());
  }

  private readonly callerDirs: () => Record<string, string>;

  /** The init's cgroup in each hierarchy, by mount point: its own, or its caller's where it has none. */
  initDirs(): Record<string, string> {
    return { ...this.callerDirs(), ...this.describe().paths };
  }

  /**
   * A new process is offered only the cgroups this user may move it into
   * from where tsrun runs; the rest it stays out of, in its caller's, with
   * a warning (runc leaves it there and says nothing).  At create the
   * split made sure of all of them; an exec may come from anywhere, as
   * from outside a delegated cgroup v2 subtree, whose common ancestor with
   * the container's cgroup is not the user's.
   */
  targets(sub?: SubCgroups): CgroupTargets | undefined {
    const offered = super.targets(sub);
    if (!offered) return offered;
    const from = this.callerDirs();
    const hierarchies = this.placement.hierarchyDirs();
    const mayJoin = (dir: string): boolean => {
      const h = hierarchies.find((x) => dir === x.dir || dir.startsWith(`${x.dir}/`));
      return !h || this.mayUse(h.mountPoint, dir, h.version, from[h.mountPoint]);
    };
    const joins = offered.joins.filter(mayJoin);
    const cloneInto = offered.cloneInto && mayJoin(offered.cloneInto) ? offered.cloneInto : undefined;
    const outOf = [
      ...offered.joins.filter((d) => !joins.includes(d)),
      ...(offered.cloneInto && !cloneInto ? [offered.cloneInto] : []),
    ];
    if (outOf.length) warn(staysOut(outOf));
    return { joins, cloneInto };
  }

  /**
   * The parent's move into a recorded container (an exec while it is
   * paused): where the user may not, the same as targets().  At create it
   * is the container's own placement (a user's systemd unit starting),
   * whose failure stays an error.
   */
  apply(pid: number, sub?: SubCgroups): void {
    try {
      super.apply(pid, sub);
    } catch (err) {
      if (!this.recorded || !/permission denied|not permitted/i.test((err as Error).message)) throw err;
      warn(staysOut([(err as Error).message]));
    }
  }

  /** No cgroup at all: what needs one says why. */
  get absent(): boolean {
    return this.placement instanceof NoPlacement;
  }

  static none(
    driver: 'v1' | 'v2',
    replaced: readonly string[],
    leftOut: HierarchyDir[],
    callerDirs: () => Record<string, string>,
  ): RootlessCgroup {
    return new RootlessCgroup(
      new NoPlacement(driver),
      new NoWriter(leftOut),
      replaced,
      leftOut,
      callerDirs,
      () => false,
    );
  }

  private rethrow(err: unknown): never {
    const h = err instanceof MissingControllerError && this.leftOut.find((x) => x.controllers.includes(err.controller));
    if (h) throw new MissingControllerError(err.controller, err.field, whyLeftOut([h]));
    throw err;
  }

  /**
   * The limits, then the device rules apart: these are tried (root with
   * --rootless true applies them as ever), and where the kernel refuses
   * them, as it refuses a user a device filter or devices.allow, that is
   * no error, as in runc's rootless managers.
   */
  set(resources: LinuxResources | undefined): void {
    try {
      super.set(resources && { ...resources, devices: undefined });
    } catch (err) {
      this.rethrow(err);
    }
    if (resources?.devices && !this.absent) this.tryDevices(() => super.set({ devices: resources.devices }));
  }

  update(resources: LinuxResources): void {
    try {
      super.update({ ...resources, devices: undefined });
    } catch (err) {
      this.rethrow(err);
    }
    if (resources.devices && !this.absent) this.tryDevices(() => super.update({ devices: resources.devices }));
  }

  private tryDevices(apply: () => void): void {
    try {
      apply();
    } catch (err) {
      if (
        err instanceof TsrunError &&
        !(err instanceof MissingControllerError) &&
        !/permission denied|not permitted/i.test(err.message)
      )
        throw err; // a bad rule is the config's error, rootless or not
      debug(`linux.resources.devices: not applied (rootless, as runc): ${(err as Error).message}`);
    }
  }

  /** A cgroup the user could not remove (one an administrator made for it) is left to its owner, with a warning. */
  destroy(): void {
    try {
      super.destroy();
    } catch (err) {
      warn(`rootless: the container's cgroup stays: ${(err as Error).message}`);
    }
  }

  freeze(): void {
    try {
      super.freeze();
    } catch (err) {
      this.rethrow(err);
    }
  }

  describe(): CgroupState {
    return { ...super.describe(), rootless: true };
  }
}

/** A hierarchy a recorded container was left out of at create: the directory it was refused is not known. */
const RECORDED = Symbol('left out at create');

/**
 * The hierarchies a recorded user's container has no directory in: left out
 * at create (their directory then unknown, so the hierarchy's own is named,
 * and the message says it was at create).
 */
export function leftOutOf(hierarchies: Hierarchy[], paths: Record<string, string>): HierarchyDir[] {
  return hierarchies
    .filter((h) => paths[h.mountPoint] === undefined)
    .map((h) => Object.assign({ ...h, dir: h.mountPoint }, { [RECORDED]: true }));
}

function staysOut(what: string[]): string {
  return `rootless: this user may not move the process into ${what.join(', ')} from the cgroup tsrun runs in: it stays in its caller's cgroup there, as with runc`;
}

function whyLeftOut(leftOut: HierarchyDir[]): string {
  const h = leftOut[0] as (HierarchyDir & { [RECORDED]?: boolean }) | undefined;
  const where = !h
    ? 'the container has no cgroup, as this user could make none'
    : h[RECORDED]
      ? `the container got no cgroup in the hierarchy at ${h.mountPoint} when it was created: this user could make or join none there`
      : `this user may not make or join ${h.dir}`;
  return `rootless: ${where}; ${REMEDY}`;
}
