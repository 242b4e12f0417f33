/**
 * The one table of namespace types: the file each has under /proc/<pid>/ns,
 * its clone(2) flag, the order setns(2) joins them in, and the one test of
 * whether two namespace files are the same namespace.
 */
import fs = require('fs');
import { type NamespaceType } from './config';

/** Per runtime-spec namespace type: /proc/<pid>/ns/<file>, and its CLONE_NEW* flag. */
export const NAMESPACES: Record<NamespaceType, { file: string; cloneFlag: number }> = {
  user: { file: 'user', cloneFlag: 0x10000000 },
  mount: { file: 'mnt', cloneFlag: 0x00020000 },
  pid: { file: 'pid', cloneFlag: 0x20000000 },
  network: { file: 'net', cloneFlag: 0x40000000 },
  ipc: { file: 'ipc', cloneFlag: 0x08000000 },
  uts: { file: 'uts', cloneFlag: 0x04000000 },
  cgroup: { file: 'cgroup', cloneFlag: 0x02000000 },
  time: { file: 'time', cloneFlag: 0x00000080 },
};

/** setns(2) must join the user namespace first, so ids resolve in it. */
export const JOIN_ORDER: readonly NamespaceType[] = ['user', 'mount', 'pid', 'network', 'ipc', 'uts', 'cgroup', 'time'];

/** clone(2) flags per runtime-spec namespace type. */
export const CLONE_FLAGS = Object.fromEntries(
  Object.entries(NAMESPACES).map(([type, ns]) => [type, ns.cloneFlag]),
) as Record<NamespaceType, number>;

/**
 * Are the two namespace files (/proc/<pid>/ns/<file>, or a bind of one) the
 * same namespace?  The kernel names a namespace by its nsfs inode: device
 * and inode both.  null when either cannot be read (no such process, or a
 * namespace type this kernel lacks).
 */
export function sameNamespace(a: string, b: string): boolean | null {
  try {
    const x = fs.statSync(a);
    const y = fs.statSync(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return null;
  }
}

/** /proc/self/ns/<file> of a type: the namespace tsrun itself runs in. */
export const ownNamespace = (type: NamespaceType): string => `/proc/self/ns/${NAMESPACES[type].file}`;
