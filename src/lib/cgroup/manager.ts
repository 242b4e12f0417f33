/**
 * The cgroup manager: one interface, a driver per host layout.
 *
 *   unified  cgroup2 only at /sys/fs/cgroup                  -> v2 driver
 *   legacy   cgroup v1 hierarchies only                      -> v1 driver
 *   hybrid   v1 hierarchies plus cgroup2 at .../unified      -> v1 driver, which
 *            also places the container in the unified tree (this machine)
 *
 * The layout is read from /proc/self/mountinfo at run time.  Paths follow
 * runc: an absolute cgroupsPath is below each hierarchy's root, a relative
 * one, or none (the id), below our own cgroup (on cgroup v2, below its
 * parent: cgroupfs.ts).
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { debug } from '../log';
import { type CgroupFiles } from './files';
import { type CgroupTargets } from './placement';
import { type LinuxResources } from './resources';
import { cgroupV1Selectors, parseMountinfo } from '../mountinfo';

/** The annotations that add or override properties of a container's systemd unit, as runc reads them (its docs/systemd.md). */
export const SYSTEMD_PROPERTY_ANNOTATION = 'org.systemd.property.';

export type Layout = 'unified' | 'legacy' | 'hybrid';

/** A mounted hierarchy: where it is, and which controllers it carries. */
export interface Hierarchy {
  mountPoint: string;
  /** The hierarchy's root as mounted (field 4 of mountinfo; "/" unless a sub-tree is mounted). */
  root: string;
  version: 1 | 2;
  /** v1: its controllers (and "name=systemd"); v2: the available controllers. */
  controllers: string[];
}

/**
 * exec --cgroup, as runc reads it: a sub-cgroup of the container's for
 * every controller (key ""), or per controller ("cpu,cpuacct:sub" gives
 * both keys "sub"); the others stay in the container's own.
 */
export type SubCgroups = Record<string, string>;

/** runc's `--cgroup [<controller>[,<controller>...]:]<path>` values, repeatable. */
export function parseSubCgroups(values: string[]): SubCgroups | undefined {
  if (!values.length) return undefined;
  const out: SubCgroups = {};
  for (const value of values) {
    const colon = value.indexOf(':');
    const controllers = colon < 0 ? [''] : value.slice(0, colon).split(',');
    const sub = colon < 0 ? value : value.slice(colon + 1);
    if (!sub || controllers.some((c) => colon >= 0 && !c))
      throw new TsrunError(`--cgroup: "${value}" is not [controller[,controller...]:]path`);
    for (const c of controllers) {
      if (c in out)
        throw new TsrunError(`--cgroup: ${c ? `controller ${c}` : 'the path for all controllers'} is given twice`);
      out[c] = sub;
    }
  }
  return out;
}

/** dir/sub, which must exist and stay below dir. */
export function subCgroupDir(dir: string, sub: string): string {
  const target = path.join(dir, sub);
  const rel = path.relative(dir, target);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel) || !fs.existsSync(target))
    throw new TsrunError(`--cgroup: ${sub} is not an existing sub-cgroup of the container's`);
  return target;
}

/** A hierarchy and the container's directory in it. */
export type HierarchyDir = Hierarchy & { dir: string };

/**
 * What a container's cgroups are to the lifecycle: one object, made of a
 * placement manager (where the cgroup is, and how processes get there)
 * and a version writer (what is written into it).
 */
export interface CgroupManager {
  /** Create the container's cgroups (an existing one is reused). */
  create(): void;
  /**
   * What a new process is offered (placement.ts decides how it gets in):
   * the cgroup2 directory it can be cloned straight into (the container's
   * on a unified host, its "unified" one on a hybrid host, none on a legacy
   * one), and the cgroup v1 directories the helper joins itself.
   */
  targets(sub?: SubCgroups): CgroupTargets | undefined;
  /** Move a process (and its future children) into them, or into existing sub-cgroups (exec --cgroup). */
  apply(pid: number, sub?: SubCgroups): void;
  /** Write linux.resources; a knob the host lacks is an error naming it. */
  set(resources: LinuxResources | undefined): void;
  /** `update` of a live container: set(), frozen meanwhile where new device rules go in by steps. */
  update(resources: LinuxResources): void;
  freeze(): void;
  thaw(): void;
  isFrozen(): boolean;
  /**
   * Every process in the container's cgroups: in any of its hierarchies (a
   * process may sit in some and not others) and in any cgroup below them.
   */
  pids(): number[];
  /** Signal every process, frozen first so none can fork away. */
  killAll(signal: number): void;
  /** Resource usage in runc's `events` shape (types.Stats). */
  stats(): Record<string, unknown>;
  /** How many times the kernel's OOM killer has struck in the cgroup. */
  oomKills(): number;
  /** Remove the cgroups; call once their processes are gone. */
  destroy(): void;
  /** What to persist in state.json to find these cgroups again. */
  describe(): CgroupState;
}

/**
 * A placement manager (crun's cgroup manager vtable, runc's cgroups
 * Manager): where the container's cgroup is, how it is made and removed,
 * and how a process gets into it.  cgroupfs.ts makes directories itself;
 * a systemd manager asks systemd for a unit.
 */
export interface Placement {
  create(): void;
  destroy(): void;
  describe(): CgroupState;
  /** The container's directory in each hierarchy, for the version writer. */
  hierarchyDirs(): HierarchyDir[];
  /**
   * What a new process is offered: the cgroup2 directory it can be cloned
   * into and the v1 ones the helper joins; undefined when the parent must
   * move the helper in (apply) before it runs an op.
   */
  targets(sub?: SubCgroups): CgroupTargets | undefined;
  apply(pid: number, sub?: SubCgroups): void;
  pids(): number[];
  /** Limits the manager itself keeps (systemd's unit properties), before the writer writes the files. */
  setProperties?(resources: LinuxResources | undefined): void;
  /**
   * Whether the manager may rewrite the device rules whenever limits are
   * set (systemd re-applies a unit's settings at a property change).
   */
  readonly rewritesDevicesOnSet?: boolean;
}

/** A hierarchy this host does not mount (cgroup v1): a write that needs it cannot be made. */
export class MissingControllerError extends TsrunError {
  constructor(
    readonly controller: string,
    readonly field: string,
    why = `this host has no ${controller} cgroup controller`,
  ) {
    super(`${field}: ${why}`);
  }
}

/**
 * A version writer (crun's cgroup-resources.c, runc's fs and fs2): limits,
 * freezing and stats in the directories a placement gives it, shared by
 * every placement manager.
 */
export interface VersionWriter {
  set(resources: LinuxResources | undefined): void;
  /**
   * Device rules are rewritten from "deny everything" up (cgroup v1's
   * files, and systemd's own rewrite on v1), so a process could meet a
   * refused /dev/null half-way; v2 swaps one program for another at once.
   */
  readonly devicesInSteps: boolean;
  freeze(): void;
  thaw(): void;
  isFrozen(): boolean;
  /** `pids`: the placement's, for a signal sent process by process. */
  killAll(signal: number, pids: () => number[]): void;
  stats(): Record<string, unknown>;
  oomKills(): number;
}

/** A placement and a version writer, as the one object the lifecycle uses. */
export class Cgroup implements CgroupManager {
  constructor(
    readonly placement: Placement,
    readonly writer: VersionWriter,
    /**
     * The default device nodes the config's linux.devices replaced (replacedDefaultDevices), saved in
     * the state for update.  Required, and the writer's and placement's deviceDefaults are built from
     * the same list (index.ts), so what is saved is what was applied.
     */
    private readonly replacedDefaultDevices: readonly string[],
  ) {}
  create(): void {
    this.placement.create();
  }
  targets(sub?: SubCgroups): CgroupTargets | undefined {
    return this.placement.targets(sub);
  }
  apply(pid: number, sub?: SubCgroups): void {
    this.placement.apply(pid, sub);
  }
  set(resources: LinuxResources | undefined): void {
    this.placement.setProperties?.(resources);
    this.writer.set(resources);
  }
  /**
   * Where device rules are rewritten in steps (v1), an update that may
   * rewrite them (new rules, or any update under systemd, which may
   * re-apply the unit's) is made with the container frozen, unless it is
   * already (then it stays so), as runc freezes it.  A host without a
   * freezer hierarchy updates without; a freeze that fails otherwise is
   * thawed and fails the update, as in runc.
   */
  update(resources: LinuxResources): void {
    let held = false;
    const rewritesDevices = resources.devices !== undefined || this.placement.rewritesDevicesOnSet === true;
    if (rewritesDevices && this.writer.devicesInSteps && !this.writer.isFrozen()) {
      try {
        this.writer.freeze();
        held = true;
      } catch (err) {
        if (!(err instanceof MissingControllerError)) {
          this.thawQuietly();
          throw err;
        }
        debug(`update: no freezer to hold the container while the device rules change: ${err.message}`);
      }
    }
    try {
      this.set(resources);
    } finally {
      if (held) this.thawQuietly();
    }
  }
  /** A thaw whose own failure must not hide the error being reported. */
  private thawQuietly(): void {
    try {
      this.writer.thaw();
    } catch (err) {
      debug(`update: thaw: ${(err as Error).message}`);
    }
  }

  freeze(): void {
    this.writer.freeze();
  }
  thaw(): void {
    this.writer.thaw();
  }
  isFrozen(): boolean {
    return this.writer.isFrozen();
  }
  pids(): number[] {
    return this.placement.pids();
  }
  killAll(signal: number): void {
    this.writer.killAll(signal, () => this.placement.pids());
  }
  stats(): Record<string, unknown> {
    return this.writer.stats();
  }
  oomKills(): number {
    return this.writer.oomKills();
  }
  destroy(): void {
    this.placement.destroy();
  }
  describe(): CgroupState {
    const state = this.placement.describe();
    return this.replacedDefaultDevices.length
      ? { ...state, replacedDefaultDevices: [...this.replacedDefaultDevices] }
      : state;
  }
}

export interface CgroupState {
  driver: 'v1' | 'v2';
  /** The placement manager: cgroupfs when absent. */
  manager?: 'systemd';
  /** systemd: the container's unit and its slice. */
  unit?: string;
  slice?: string;
  /** systemd: the unit is the caller's own systemd manager's (a user's, on its session bus), not the system's. */
  userManager?: boolean;
  /** Directory of the container's cgroup in each hierarchy, keyed by hierarchy mount point. */
  paths: Record<string, string>;
  /** Default device nodes whose rules runc leaves out, as linux.devices listed them (devices.ts). */
  replacedDefaultDevices?: string[];
  /** A user's container (rootless.ts): the hierarchies it could not use were left out. */
  rootless?: boolean;
}

export function readHierarchies(mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): Hierarchy[] {
  const out: Hierarchy[] = [];
  for (const { mountPoint, root, fstype, superOptions } of parseMountinfo(mountinfo)) {
    if (fstype === 'cgroup') {
      out.push({ mountPoint, root, version: 1, controllers: cgroupV1Selectors(superOptions) });
    } else if (fstype === 'cgroup2') {
      let controllers: string[] = [];
      try {
        controllers = fs
          .readFileSync(path.join(mountPoint, 'cgroup.controllers'), 'utf8')
          .trim()
          .split(/\s+/)
          .filter(Boolean);
      } catch {
        // unreadable: treat as having none
      }
      out.push({ mountPoint, root, version: 2, controllers });
    }
  }
  return out;
}

export function detectLayout(hierarchies: Hierarchy[]): Layout {
  const v1 = hierarchies.some((h) => h.version === 1 && !h.controllers.every((c) => c.startsWith('name=')));
  const v2 = hierarchies.some((h) => h.version === 2);
  if (v1 && v2) return 'hybrid';
  if (v1) return 'legacy';
  if (v2) return 'unified';
  throw new TsrunError('no cgroup hierarchy is mounted on this host');
}

/** Our own cgroup in each hierarchy, from /proc/self/cgroup ("N:controllers:/path"). */
export function ownCgroups(text = fs.readFileSync('/proc/self/cgroup', 'utf8')): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.trim().split('\n')) {
    const [, controllers, cgPath] = line.match(/^\d+:([^:]*):(.*)$/) ?? [];
    if (cgPath === undefined) continue;
    out.set(controllers === '' ? '' : controllers, cgPath);
  }
  return out;
}

/**
 * Where a container's cgroup lives inside one hierarchy, relative to its
 * root: an absolute cgroupsPath as it is, a relative one (or none: the id)
 * below `base` (the caller's cgroup there, or on v2 its parent).  Systemd-style
 * "slice:prefix:name" paths need --systemd-cgroup.
 */
export function cgroupRelativePath(cgroupsPath: string | undefined, id: string, base: string): string {
  if (cgroupsPath && /^[^/]*:[^/]*:[^/]*$/.test(cgroupsPath))
    throw new TsrunError(
      `linux.cgroupsPath: ${JSON.stringify(cgroupsPath)} is a systemd path (slice:prefix:name): it needs --systemd-cgroup`,
    );
  // No cgroupsPath: the id, below `base`: the caller's own cgroup or (v2) its parent, as runc
  // places it, so a runtime started from a limited service stays under that service's limits.
  const wanted = cgroupsPath || id;
  const joined = path.posix.isAbsolute(wanted) ? path.posix.normalize(wanted) : path.posix.join(base, wanted);
  if (joined.split('/').includes('..'))
    throw new TsrunError(`linux.cgroupsPath: ${JSON.stringify(cgroupsPath)} leaves the cgroup hierarchy`);
  return joined;
}

export function readPids(files: CgroupFiles, procsFile: string): number[] {
  return (files.read(procsFile) ?? '').split('\n').filter(Boolean).map(Number);
}

/**
 * For a clone refused with EAGAIN, once the helper that tried is reaped:
 * the pids limit that was full (counting that helper), looking at the
 * container's cgroups and every cgroup above them, as "pids.max N in DIR,
 * M in use"; undefined when none was.
 */
export function tightestPidsLimit(state: CgroupState): string | undefined {
  let best: { room: number; text: string } | undefined;
  for (const [mountPoint, leaf] of Object.entries(state.paths)) {
    for (let dir = leaf; dir.startsWith(mountPoint); dir = path.dirname(dir)) {
      let max: string, current: number;
      try {
        max = fs.readFileSync(path.join(dir, 'pids.max'), 'utf8').trim();
        current = Number(fs.readFileSync(path.join(dir, 'pids.current'), 'utf8'));
      } catch {
        break; // not a pids hierarchy, or the cgroup is gone
      }
      // The helper that failed has been reaped since: it was one more in use.
      const room = Number(max) - (current + 1);
      if (max !== 'max' && room <= 0 && (!best || room < best.room))
        best = { room, text: `pids.max ${max} in ${dir}, ${current + 1} in use` };
      if (dir === mountPoint) break;
    }
  }
  return best?.text;
}

/** The processes of a cgroup and of every cgroup below it. */
export function treePids(files: CgroupFiles, dir: string): number[] {
  const out = readPids(files, path.join(dir, 'cgroup.procs'));
  for (const sub of files.subdirs(dir) ?? []) out.push(...treePids(files, path.join(dir, sub)));
  return out;
}

/** Remove a cgroup and every cgroup below it, deepest first (a cgroup with children cannot go). */
export function removeCgroupTree(files: CgroupFiles, dir: string, sleep: (ms: number) => void): void {
  const subs = files.subdirs(dir);
  if (!subs) return;
  for (const sub of subs) removeCgroupTree(files, path.join(dir, sub), sleep);
  removeCgroupDir(files, dir, sleep);
}

/** rmdir, retrying while the kernel still counts exiting tasks. */
export function removeCgroupDir(files: CgroupFiles, dir: string, sleep: (ms: number) => void): void {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      files.rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw err;
      sleep(10);
    }
  }
  throw new TsrunError(`cannot remove cgroup ${dir}: still busy`);
}

/** Signal every process of a cgroup while it is frozen, so none can fork away meanwhile. */
export function signalFrozen(
  cgroup: Pick<VersionWriter, 'freeze' | 'thaw' | 'isFrozen'>,
  pids: () => number[],
  signal: number,
  canFreeze = true,
): void {
  const freezeHere = canFreeze && !cgroup.isFrozen();
  if (freezeHere) cgroup.freeze();
  try {
    for (const pid of pids()) {
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  } finally {
    if (freezeHere) cgroup.thaw();
  }
}
