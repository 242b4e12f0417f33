/**
 * The cgroupfs placement manager (runc's "fs" manager): the container's
 * cgroup is a directory tsrun makes itself in each hierarchy, at
 * linux.cgroupsPath (or the id) below the caller's own cgroup (on cgroup
 * v2: below its parent, as runc's fs2 puts it), and processes join by
 * writing their pid.  What goes into those directories
 * is the version writers' (v1.ts, v2.ts).
 */
import path = require('path');
import { TsrunError } from '../errors';
import { type CgroupFiles, readOr, writeKnob } from './files';
import {
  type CgroupState,
  cgroupRelativePath,
  type Hierarchy,
  type HierarchyDir,
  ownCgroups,
  type Placement,
  removeCgroupTree,
  type SubCgroups,
  subCgroupDir,
  treePids,
} from './manager';
import { type CgroupTargets } from './placement';

/**
 * The directory this process is in, in each hierarchy, by mount point:
 * where the init of a user's container with no cgroup of its own stays
 * (rootless.ts), and what its cgroup mount binds there, as runc binds the
 * cgroups its init is in.
 */
export function callerCgroupDirs(hierarchies: Hierarchy[], own = ownCgroups()): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of hierarchies) {
    const at = own.get(h.version === 2 ? '' : h.controllers.join(','));
    if (at === undefined) continue;
    const below = h.root !== '/' && at.startsWith(h.root) ? at.slice(h.root.length) : at;
    out[h.mountPoint] = path.join(h.mountPoint, below);
  }
  return out;
}

/** cgroup v1 (legacy and hybrid hosts): a directory in every hierarchy, and in the hybrid cgroup2 tree. */
export class CgroupfsV1Placement implements Placement {
  /** hierarchy mount point -> the container's directory in it */
  private readonly dirs: Map<string, HierarchyDir>;

  constructor(
    hierarchies: Hierarchy[],
    cgroupsPath: string | undefined,
    id: string,
    private readonly files: CgroupFiles,
    private readonly sleep: (ms: number) => void,
    existing?: CgroupState,
  ) {
    this.dirs = new Map();
    const own = existing ? new Map<string, string>() : ownCgroups();
    for (const h of hierarchies) {
      if (h.version === 2 && h.mountPoint === '/sys/fs/cgroup') continue; // a unified host is the v2 placement's
      let dir: string;
      if (existing) {
        dir = existing.paths[h.mountPoint];
        if (!dir) continue;
      } else {
        const key = h.version === 2 ? '' : h.controllers.join(',');
        const ownPath = own.get(key) ?? '/';
        const rel = cgroupRelativePath(cgroupsPath, id, ownPath);
        // A hierarchy mounted from a sub-tree (root != "/") shows paths below that root.
        const below = h.root !== '/' && rel.startsWith(h.root) ? rel.slice(h.root.length) : rel;
        dir = path.join(h.mountPoint, below);
      }
      this.dirs.set(h.mountPoint, { ...h, dir });
    }
  }

  hierarchyDirs(): HierarchyDir[] {
    return [...this.dirs.values()];
  }

  describe(): CgroupState {
    return { driver: 'v1', paths: Object.fromEntries([...this.dirs].map(([mp, h]) => [mp, h.dir])) };
  }

  create(): void {
    for (const h of this.dirs.values()) {
      if (!(h.version === 1 && h.controllers.includes('cpuset'))) {
        mkdirs(this.files, h.mountPoint, h.dir);
        continue;
      }
      // A new cpuset starts empty and admits no task: each new level inherits its parent's.
      let dir = h.mountPoint;
      for (const part of path.relative(h.mountPoint, h.dir).split('/').filter(Boolean)) {
        const parent = dir;
        dir = path.join(dir, part);
        if (!this.files.exists(dir)) this.files.mkdir(dir);
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          if (readOr(this.files, path.join(dir, file), '').trim() === '')
            this.files.write(path.join(dir, file), readOr(this.files, path.join(parent, file), ''));
        }
      }
    }
  }

  /**
   * exec --cgroup: the directory a process goes to in hierarchy `h`.  A
   * path for all controllers applies to every hierarchy; a per-controller
   * one to the hierarchy holding that controller (the unified one of a
   * hybrid host counts by its own controllers); the rest stay the
   * container's own, as runc's do.
   */
  private targetIn(h: HierarchyDir, sub?: SubCgroups): string {
    if (!sub) return h.dir;
    const forAll = sub[''];
    const own = h.version === 2 ? h.controllers : h.controllers.map((c) => c.replace(/^name=/, ''));
    const named = own.map((c) => sub[c]).filter((s): s is string => s !== undefined);
    if (new Set(named).size > 1)
      throw new TsrunError(`--cgroup: ${own.join(',')} share one hierarchy and cannot go to different sub-cgroups`);
    const wanted = named[0] ?? forAll;
    return wanted === undefined ? h.dir : subCgroupDir(h.dir, wanted);
  }

  private checkSubControllers(sub?: SubCgroups): void {
    const known = new Set([...this.dirs.values()].flatMap((h) => h.controllers.map((c) => c.replace(/^name=/, ''))));
    for (const c of Object.keys(sub ?? {}))
      if (c && !known.has(c)) throw new TsrunError(`--cgroup: unknown controller ${c}`);
  }

  /**
   * A process is cloned into one cgroup2 directory at most: on a hybrid
   * host, the unified one.  The v1 hierarchies the helper joins itself
   * before it clones the init (joinTargets), which then inherits them.
   */
  targets(sub?: SubCgroups): CgroupTargets {
    return { joins: this.joinTargets(sub), cloneInto: this.cloneTarget(sub) };
  }

  cloneTarget(sub?: SubCgroups): string | undefined {
    this.checkSubControllers(sub);
    const unified = [...this.dirs.values()].find((h) => h.version === 2);
    return unified && this.targetIn(unified, sub);
  }

  joinTargets(sub?: SubCgroups): string[] {
    this.checkSubControllers(sub);
    return [...this.dirs.values()].filter((h) => h.version === 1).map((h) => this.targetIn(h, sub));
  }

  apply(pid: number, sub?: SubCgroups): void {
    this.checkSubControllers(sub);
    for (const h of this.dirs.values())
      writeKnob(this.files, this.targetIn(h, sub), 'cgroup.procs', pid, sub ? '--cgroup' : 'linux.cgroupsPath');
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const h of this.dirs.values()) for (const pid of treePids(this.files, h.dir)) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  destroy(): void {
    for (const h of this.dirs.values()) removeCgroupTree(this.files, h.dir, this.sleep);
  }
}

/** cgroup v2 (unified hosts): one directory, the controllers enabled in every ancestor. */
export class CgroupfsV2Placement implements Placement {
  readonly dir: string;

  constructor(
    private readonly hierarchy: Hierarchy,
    cgroupsPath: string | undefined,
    id: string,
    private readonly files: CgroupFiles,
    private readonly sleep: (ms: number) => void,
    existing?: CgroupState,
  ) {
    if (existing) {
      this.dir = existing.paths[hierarchy.mountPoint];
    } else {
      // Below the parent of the caller's cgroup, as runc's fs2 places it: the caller's own
      // holds processes (its own, at least), and cgroup v2 enables no controller for the
      // children of a cgroup with processes in it; its parent, in a delegated subtree, is
      // the user's.
      const rel = cgroupRelativePath(cgroupsPath, id, path.posix.dirname(ownCgroups().get('') ?? '/'));
      this.dir = path.join(hierarchy.mountPoint, rel);
    }
  }

  hierarchyDirs(): HierarchyDir[] {
    return [{ ...this.hierarchy, dir: this.dir }];
  }

  describe(): CgroupState {
    return { driver: 'v2', paths: { [this.hierarchy.mountPoint]: this.dir } };
  }

  /** mkdir each level, enabling in its parent every controller the parent can give. */
  create(): void {
    let dir = this.hierarchy.mountPoint;
    for (const part of path.relative(this.hierarchy.mountPoint, this.dir).split('/').filter(Boolean)) {
      const available = readOr(this.files, path.join(dir, 'cgroup.controllers'), '')
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      const enabled = new Set(readOr(this.files, path.join(dir, 'cgroup.subtree_control'), '').trim().split(/\s+/));
      const missing = available.filter((c) => !enabled.has(c));
      if (missing.length) {
        try {
          this.files.write(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
        } catch {
          // One at a time, so a controller the kernel refuses here (e.g. a threaded subtree) does not block the rest.
          for (const c of missing) {
            try {
              this.files.write(path.join(dir, 'cgroup.subtree_control'), `+${c}`);
            } catch {
              // set() names the knob if this container needs it
            }
          }
        }
      }
      dir = path.join(dir, part);
      if (!this.files.exists(dir)) this.files.mkdir(dir);
    }
  }

  /** One tree: a sub-cgroup for all (runc refuses per-controller paths on cgroup v2 too). */
  private target(sub?: SubCgroups): string {
    if (!sub) return this.dir;
    const named = Object.keys(sub).filter((c) => c !== '');
    if (named.length)
      throw new TsrunError(
        `--cgroup: per-controller paths (${named.join(', ')}) need cgroup v1; on cgroup v2 give one path`,
      );
    return subCgroupDir(this.dir, sub['']);
  }

  targets(sub?: SubCgroups): CgroupTargets {
    return { joins: [], cloneInto: this.target(sub) };
  }

  cloneTarget(sub?: SubCgroups): string {
    return this.target(sub);
  }

  joinTargets(): string[] {
    return []; // cloned straight in
  }

  apply(pid: number, sub?: SubCgroups): void {
    writeKnob(this.files, this.target(sub), 'cgroup.procs', pid, sub ? '--cgroup' : 'linux.cgroupsPath');
  }

  /** Processes here and in sub-cgroups (exec --cgroup puts some there). */
  pids(): number[] {
    return treePids(this.files, this.dir);
  }

  destroy(): void {
    removeCgroupTree(this.files, this.dir, this.sleep);
  }
}

/** mkdir -p below the mount point. */
function mkdirs(files: CgroupFiles, mountPoint: string, dir: string): void {
  let at = mountPoint;
  for (const part of path.relative(mountPoint, dir).split('/').filter(Boolean)) {
    at = path.join(at, part);
    if (files.exists(at)) continue;
    try {
      files.mkdir(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile: a sibling's parent
    }
  }
}
