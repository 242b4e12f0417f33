/**
 * The real host behind the plan compiler's HostView.
 */
import fs = require('fs');
import { type NamespaceType } from './config';
import { readHierarchies } from './cgroup/manager';
import { parseMountinfo, readMountinfo } from './mountinfo';
import { ownNamespace, sameNamespace } from './namespaces';
import { type CgroupHierarchy, type HostView } from './plan';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** The id of the topmost mount at `mountPoint` in our mount namespace (the last one listed), or null. */
export function topMountId(mountPoint: string): number | null {
  return mountIdsAt(mountPoint).at(-1) ?? null;
}

/** The ids of the mounts at mountPoint in our namespace, bottom first (mountinfo's order). */
export function mountIdsAt(mountPoint: string): number[] {
  return readMountinfo()
    .filter((m) => m.mountPoint === mountPoint)
    .map((m) => m.id);
}

/**
 * Cgroup hierarchies mounted under /sys/fs/cgroup, as the plan compiler
 * names them for a "cgroup" mount: read by the cgroup layer
 * (readHierarchies), the one reader of cgroup mounts.
 */
export function readCgroupHierarchies(mountinfo: string): CgroupHierarchy[] {
  const out: CgroupHierarchy[] = [];
  for (const h of readHierarchies(mountinfo)) {
    if (h.mountPoint !== CGROUP_ROOT && !h.mountPoint.startsWith(CGROUP_ROOT + '/')) continue;
    const name = h.mountPoint === CGROUP_ROOT ? '' : h.mountPoint.slice(CGROUP_ROOT.length + 1);
    if (name.includes('/')) continue;
    // v1: the options that select the hierarchy (its controllers and name=).
    out.push(
      h.version === 2 ? { name, version: 2, options: '' } : { name, version: 1, options: h.controllers.join(',') },
    );
  }
  return out;
}

/**
 * Mount points of full procfs and sysfs mounts (their filesystem's root
 * mounted), deepest first: the ones that let a new user namespace mount
 * another procfs or sysfs (see OP_HIDE_HOST_FS).
 */
export function readFullPseudoFsMounts(mountinfo: string): string[] {
  return parseMountinfo(mountinfo)
    .filter((m) => (m.fstype === 'proc' || m.fstype === 'sysfs') && m.root === '/')
    .map((m) => m.mountPoint)
    .sort((a, b) => b.split('/').length - a.split('/').length);
}

/**
 * Whether this process is in a user namespace other than the host's, as
 * runc tells it: /proc/self/uid_map maps anything but all ids to
 * themselves.  Root there (an engine's rootless namespace, as rootless
 * podman runs its runtime) has no say over the host's devices or cgroups.
 */
export function inUserNamespace(uidMap = (): string => fs.readFileSync('/proc/self/uid_map', 'utf8')): boolean {
  try {
    return uidMap().trim().split(/\s+/).join(' ') !== '0 0 4294967295';
  } catch {
    return false; // no /proc: the host's, as far as anyone can tell
  }
}

/**
 * The host's /etc/passwd name of `uid`, or undefined.  Read here, not
 * through os.userInfo(), which Bun's executable answers "unknown".
 */
export function passwdName(uid: number): string | undefined {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const fields = line.split(':');
      if (fields.length > 2 && fields[2] !== '' && Number(fields[2]) === uid) return fields[0];
    }
  } catch {
    // no passwd: no name
  }
  return undefined;
}

export const realHost: HostView = {
  inUserNamespace: () => inUserNamespace(),
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
    // A path that cannot be read is not ours: joining it fails, and says so.
    return sameNamespace(nsPath, ownNamespace(type)) === true;
  },
};
