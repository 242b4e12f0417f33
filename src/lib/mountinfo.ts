/**
 * The one reader of /proc/<pid>/mountinfo (proc(5)): what the cgroup layer,
 * the plan compiler's host view and delete's mount checks need from it.
 */
import fs = require('fs');

export interface MountinfoEntry {
  id: number;
  /** The root of the mount within its filesystem. */
  root: string;
  mountPoint: string;
  fstype: string;
  /** The mount's source ("overlay", a device, a name tsrun gave it). */
  source: string;
  superOptions: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));

export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    // The optional fields end at " - "; escaping keeps it out of paths.
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const fields = left.split(' ');
    const [fstype, source = '', superOptions = ''] = right.split(' ');
    out.push({
      id: Number(fields[0]),
      root: unescape(fields[3]),
      mountPoint: unescape(fields[4]),
      fstype,
      source: unescape(source),
      superOptions,
    });
  }
  return out;
}

/** Our own mount namespace's mounts, in mountinfo's order (bottom first). */
export function readMountinfo(): MountinfoEntry[] {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** cgroup v1 super options that say how a hierarchy is mounted, not which one it is. */
const CGROUP_V1_GENERIC = new Set([
  'rw',
  'ro',
  'nosuid',
  'nodev',
  'noexec',
  'relatime',
  'noatime',
  'clone_children',
  'noprefix',
  'xattr',
  'cpuset_v2_mode',
  'favordynmods',
]);

/** The options of a cgroup v1 mount that select its hierarchy: its controllers and name=. */
export function cgroupV1Selectors(superOptions: string): string[] {
  return superOptions.split(',').filter((o) => o && !CGROUP_V1_GENERIC.has(o) && !o.startsWith('release_agent='));
}
