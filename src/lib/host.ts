/**
 * The real host behind the plan compiler's HostView.
 */
import fs = require('fs');
import { type NamespaceType } from './config';
import { type CgroupHierarchy, type HostView } from './plan';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescapeMountinfo = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The fields of mountinfo's lines that the readers below use. */
function mountinfoEntries(
  mountinfo: string,
): Array<{ root: string; mountPoint: string; fstype: string; superOptions: string }> {
  const out = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const fields = left.split(' ');
    const [fstype, , superOptions = ''] = right.split(' ');
    out.push({ root: fields[3], mountPoint: unescapeMountinfo(fields[4]), fstype, superOptions });
  }
  return out;
}

/** The id of the topmost mount at `mountPoint` in our mount namespace (the last one listed), or null. */
export function topMountId(mountPoint: string): number | null {
  return mountIdsAt(mountPoint).at(-1) ?? null;
}

/** The ids of the mounts at mountPoint in our namespace, bottom first (mountinfo's order). */
export function mountIdsAt(mountPoint: string): number[] {
  const ids: number[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4 && unescapeMountinfo(fields[4]) === mountPoint) ids.push(Number(fields[0]));
  }
  return ids;
}

/** Cgroup hierarchies mounted under /sys/fs/cgroup, from our mountinfo. */
export function readCgroupHierarchies(mountinfo: string): CgroupHierarchy[] {
  const out: CgroupHierarchy[] = [];
  for (const { mountPoint, fstype, superOptions } of mountinfoEntries(mountinfo)) {
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    if (mountPoint !== CGROUP_ROOT && !mountPoint.startsWith(CGROUP_ROOT + '/')) continue;
    const name = mountPoint === CGROUP_ROOT ? '' : mountPoint.slice(CGROUP_ROOT.length + 1);
    if (name.includes('/')) continue;
    if (fstype === 'cgroup2') {
      out.push({ name, version: 2, options: '' });
    } else {
      // Keep the options that select the hierarchy: controllers and name=.
      const generic = new Set([
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
      const options = superOptions
        .split(',')
        .filter((o) => !generic.has(o) && !o.startsWith('release_agent='))
        .join(',');
      out.push({ name, version: 1, options });
    }
  }
  return out;
}

/**
 * Mount points of full procfs and sysfs mounts (their filesystem's root
 * mounted), deepest first: the ones that let a new user namespace mount
 * another procfs or sysfs (see OP_HIDE_HOST_FS).
 */
export function readFullPseudoFsMounts(mountinfo: string): string[] {
  return mountinfoEntries(mountinfo)
    .filter((m) => (m.fstype === 'proc' || m.fstype === 'sysfs') && m.root === '/')
    .map((m) => m.mountPoint)
    .sort((a, b) => b.split('/').length - a.split('/').length);
}

export const realHost: HostView = {
  kindOf(hostPath: string) {
    try {
      return fs.statSync(hostPath).isDirectory() ? 'dir' : 'file';
    } catch {
      return null;
    }
  },
  cgroupHierarchies() {
    return readCgroupHierarchies(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  },
  fullPseudoFsMounts() {
    return readFullPseudoFsMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  },
  isHostNamespace(nsPath: string, type: NamespaceType) {
    const file = {
      user: 'user',
      mount: 'mnt',
      pid: 'pid',
      network: 'net',
      ipc: 'ipc',
      uts: 'uts',
      cgroup: 'cgroup',
      time: 'time',
    }[type];
    try {
      const theirs = fs.statSync(nsPath);
      const ours = fs.statSync(`/proc/self/ns/${file}`);
      return theirs.ino === ours.ino && theirs.dev === ours.dev;
    } catch {
      return false; // a path that does not exist fails when it is joined
    }
  },
};
