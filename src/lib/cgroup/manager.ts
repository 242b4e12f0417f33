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
 * one below our own cgroup, and none means "/<id>".
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { cgroupV1Selectors, parseMountinfo } from '../mountinfo';
import { sleepSync } from '../sleep';

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

export interface CgroupManager {
  /** Create the container's cgroups (an existing one is reused). */
  create(): void;
  /**
   * The cgroup2 directory a process can be cloned straight into
   * (CLONE_INTO_CGROUP): the container's on a unified host, its "unified"
   * one on a hybrid host; none on a legacy one.
   */
  cloneTarget(sub?: SubCgroups): string | undefined;
  /** cgroup v1: the directories the helper joins itself, by writing "0" to their tasks (OP_JOIN_CGROUP). */
  joinTargets(sub?: SubCgroups): string[];
  /** Move a process (and its future children) into them, or into existing sub-cgroups (exec --cgroup). */
  apply(pid: number, sub?: SubCgroups): void;
  /** Write linux.resources; a knob the host lacks is an error naming it. */
  set(resources: Record<string, unknown> | undefined): void;
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

export interface CgroupState {
  driver: 'v1' | 'v2';
  /** Directory of the container's cgroup in each hierarchy, keyed by hierarchy mount point. */
  paths: Record<string, string>;
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
 * below `ownPath`, the caller's cgroup there.  Systemd-style
 * "slice:prefix:name" paths need --systemd-cgroup.
 */
export function cgroupRelativePath(cgroupsPath: string | undefined, id: string, ownPath: string): string {
  if (cgroupsPath && /^[^/]*:[^/]*:[^/]*$/.test(cgroupsPath))
    throw new TsrunError(
      `linux.cgroupsPath: ${JSON.stringify(cgroupsPath)} is a systemd path (slice:prefix:name); the systemd cgroup manager is not supported yet`,
    );
  // No cgroupsPath: the id, below the caller's own cgroup (runc's placement:
  // a runtime started from a limited service stays under that service's limits).
  const wanted = cgroupsPath || id;
  const joined = path.posix.isAbsolute(wanted) ? path.posix.normalize(wanted) : path.posix.join(ownPath, wanted);
  if (joined.split('/').includes('..'))
    throw new TsrunError(`linux.cgroupsPath: ${JSON.stringify(cgroupsPath)} leaves the cgroup hierarchy`);
  return joined;
}

/** Write one cgroup file; a missing knob is named in the error. */
export function writeKnob(dir: string, file: string, value: string | number, field: string): void {
  const target = path.join(dir, file);
  try {
    fs.writeFileSync(target, String(value));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TsrunError(`${field}: this host has no cgroup knob ${file} (${dir})`);
    const reason = (err as Error).message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
    throw new TsrunError(`${field}: write ${value} to ${target}: ${reason}`);
  }
}

export function readPids(procsFile: string): number[] {
  try {
    return fs.readFileSync(procsFile, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
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
export function treePids(dir: string): number[] {
  const out = readPids(path.join(dir, 'cgroup.procs'));
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out; // gone, or never made
  }
  for (const entry of entries) if (entry.isDirectory()) out.push(...treePids(path.join(dir, entry.name)));
  return out;
}

/** Remove a cgroup and every cgroup below it, deepest first (a cgroup with children cannot go). */
export function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) if (entry.isDirectory()) removeCgroupTree(path.join(dir, entry.name));
  removeCgroupDir(dir);
}

/** rmdir, retrying while the kernel still counts exiting tasks. */
export function removeCgroupDir(dir: string): void {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw err;
      sleepSync(10);
    }
  }
  throw new TsrunError(`cannot remove cgroup ${dir}: still busy`);
}

/** Signal every process of a cgroup while it is frozen, so none can fork away meanwhile. */
export function signalFrozen(
  cgroup: Pick<CgroupManager, 'freeze' | 'thaw' | 'isFrozen' | 'pids'>,
  signal: number,
  canFreeze = true,
): void {
  const freezeHere = canFreeze && !cgroup.isFrozen();
  if (freezeHere) cgroup.freeze();
  try {
    for (const pid of cgroup.pids()) {
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
