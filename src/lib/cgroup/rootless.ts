/**
 * cgroups for an unprivileged user (--rootless; "auto" is so for any user
 * but root), as runc's rootless cgroup manager treats them: a hierarchy
 * where the user may not make (or join) the container's cgroup is left
 * out instead of failing the create, as long as nothing needs it.  A limit
 * that needs a hierarchy left out, pause without a freezer, and the like
 * fail naming what is missing and how to provide it (a cgroup delegated
 * to the user, or the user's systemd through --systemd-cgroup).
 *
 * Decided before anything is made, from access(2) on the directories:
 * the container's own where it exists, else the nearest existing parent,
 * where the cgroup would be made.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { debug } from '../log';
import {
  Cgroup,
  type CgroupState,
  type HierarchyDir,
  MissingControllerError,
  type Placement,
  type VersionWriter,
} from './manager';
import { type CgroupTargets } from './placement';
import { type LinuxResources } from './resources';

/** Whether this user may make or join the cgroup at `dir` (below `mountPoint`). */
export type MayUseCgroup = (mountPoint: string, dir: string, version: 1 | 2) => boolean;

export const hostMayUseCgroup: MayUseCgroup = (mountPoint, dir, version) => {
  const join = path.join(dir, version === 2 ? 'cgroup.procs' : 'tasks');
  if (fs.existsSync(dir)) return writable(join);
  // Made by the user: the nearest directory that exists must let it in.
  let parent = path.dirname(dir);
  while (parent.length > mountPoint.length && !fs.existsSync(parent)) parent = path.dirname(parent);
  return writable(parent, fs.constants.W_OK | fs.constants.X_OK);
};

function writable(file: string, mode = fs.constants.W_OK): boolean {
  try {
    fs.accessSync(file, mode);
    return true;
  } catch {
    return false;
  }
}

/** The hierarchies a user's container keeps, and what the ones left out would have given. */
export function splitUsable(
  dirs: HierarchyDir[],
  mayUse: MayUseCgroup,
): { usable: HierarchyDir[]; leftOut: HierarchyDir[] } {
  const usable: HierarchyDir[] = [];
  const leftOut: HierarchyDir[] = [];
  for (const h of dirs) (mayUse(h.mountPoint, h.dir, h.version) ? usable : leftOut).push(h);
  return { usable, leftOut };
}

/** How to give a user a cgroup, said with every refusal. */
const REMEDY = "delegate one to this user (chown it), or use --systemd-cgroup with the user's systemd";

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
  targets(): CgroupTargets {
    return { joins: [] };
  }
  apply(): void {}
  /** None known: the lifecycle kills the init, and its pid namespace with it. */
  pids(): number[] {
    return [];
  }
}

/** The writer of a container with no cgroup: what would need one fails saying why there is none. */
class NoWriter implements VersionWriter {
  readonly devicesInSteps = false;
  constructor(private readonly why: string) {}
  set(resources: LinuxResources | undefined): void {
    const asked = firstRequestedResource(resources);
    if (asked) throw new MissingControllerError('', `linux.resources.${asked}`, this.why);
  }
  freeze(): void {
    throw new MissingControllerError('freezer', 'pause', this.why);
  }
  thaw(): void {
    throw new MissingControllerError('freezer', 'resume', this.why);
  }
  isFrozen(): boolean {
    return false;
  }
  killAll(): void {
    throw new NoCgroupError(`kill --all: the container has no cgroup to find its processes in (${this.why})`);
  }
  stats(): Record<string, unknown> {
    throw new NoCgroupError(`events --stats: the container has no cgroup to read (${this.why})`);
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
  ) {
    super(placement, writer, replaced);
  }

  /** No cgroup at all: what needs one says why. */
  get absent(): boolean {
    return this.placement instanceof NoPlacement;
  }

  static none(driver: 'v1' | 'v2', replaced: readonly string[], leftOut: HierarchyDir[]): RootlessCgroup {
    return new RootlessCgroup(new NoPlacement(driver), new NoWriter(whyLeftOut(leftOut)), replaced, leftOut);
  }

  private rethrow(err: unknown): never {
    const h = err instanceof MissingControllerError && this.leftOut.find((x) => x.controllers.includes(err.controller));
    if (h) throw new MissingControllerError(err.controller, err.field, whyLeftOut([h]));
    throw err;
  }

  set(resources: LinuxResources | undefined): void {
    if (resources?.devices) debug('linux.resources.devices: not applied to a rootless container (as runc)');
    try {
      super.set(resources && { ...resources, devices: undefined });
    } catch (err) {
      this.rethrow(err);
    }
  }

  update(resources: LinuxResources): void {
    try {
      super.update({ ...resources, devices: undefined });
    } catch (err) {
      this.rethrow(err);
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

function whyLeftOut(leftOut: HierarchyDir[]): string {
  const where = leftOut.length
    ? `this user may not make or join ${leftOut[0].dir}`
    : 'the container has no cgroup, as this user could make none';
  return `rootless: ${where}; ${REMEDY}`;
}
