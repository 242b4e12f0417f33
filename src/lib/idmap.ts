/**
 * A new user namespace's uid_map and gid_map, written by the parent while
 * the init waits, as runc's nsexec writes them (update_uidmap): directly
 * first, which root may always do and another user may for a map of its
 * own id alone; where the kernel refuses that (EPERM), through newuidmap
 * and newgidmap, the setuid tools of the uidmap package, which check the
 * ranges against /etc/subuid and /etc/subgid.
 *
 * A user's own gid_map is written only once setgroups is denied in the
 * namespace (user_namespaces(7)): otherwise a process there could drop a
 * group whose members the host denies something to.  So, as runc does,
 * tsrun denies setgroups when it is not root and the gid map is one it can
 * write itself (its own gid, one id); with newgidmap setgroups stays
 * allowed, and the helper sets the process's groups.
 */
import { type IDMapping } from './config';
import { describeFsError, TsrunError } from './errors';

export interface IdMapHost {
  /** Write a /proc file; throws the errno error (code "EPERM" when the kernel refuses). */
  writeProcFile(path: string, text: string): void;
  /** Run newuidmap or newgidmap; throws a TsrunError saying why it failed, or that it is not installed. */
  runIdMapTool(tool: 'newuidmap' | 'newgidmap', args: string[]): void;
  euid(): number;
  egid(): number;
}

/** A map this user may write itself: one id, its own (the kernel's rule for an unprivileged writer). */
export function ownIdOnly(maps: readonly IDMapping[] | undefined, ownId: number): boolean {
  return maps?.length === 1 && maps[0].size === 1 && maps[0].hostID === ownId;
}

/** Whether setgroups is denied in the container's new user namespace (the helper then keeps the groups as they are). */
export function setgroupsDenied(gidMappings: readonly IDMapping[] | undefined, euid: number, egid: number): boolean {
  return euid !== 0 && ownIdOnly(gidMappings, egid);
}

/** The host id that container id `id` is mapped to, if any. */
export function hostIdOf(maps: readonly IDMapping[] | undefined, id: number): number | undefined {
  const m = maps?.find((x) => id >= x.containerID && id < x.containerID + x.size);
  return m && m.hostID + (id - m.containerID);
}

/** /proc/<pid>/uid_map (or gid_map) as mappings. */
export function parseIdMap(text: string): IDMapping[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every(Number.isFinite))
    .map(([containerID, hostID, size]) => ({ containerID, hostID, size }));
}

const format = (maps: readonly IDMapping[]): string =>
  maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');

export function writeIdMaps(
  pid: number,
  uidMappings: readonly IDMapping[] | undefined,
  gidMappings: readonly IDMapping[] | undefined,
  host: IdMapHost,
): void {
  if (setgroupsDenied(gidMappings, host.euid(), host.egid())) {
    try {
      host.writeProcFile(`/proc/${pid}/setgroups`, 'deny');
    } catch (err) {
      throw new TsrunError(describeFsError(err, 'linux.gidMappings: deny setgroups in the new user namespace'));
    }
  }
  writeOne(pid, 'uid', uidMappings ?? [], host);
  writeOne(pid, 'gid', gidMappings ?? [], host);
}

function writeOne(pid: number, kind: 'uid' | 'gid', maps: readonly IDMapping[], host: IdMapHost): void {
  const field = `linux.${kind}Mappings`;
  try {
    host.writeProcFile(`/proc/${pid}/${kind}_map`, format(maps));
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM' || host.euid() === 0)
      throw new TsrunError(describeFsError(err, `${field}: write /proc/${pid}/${kind}_map`));
  }
  // Not ours to write: the setuid tool checks the ranges this user was given.
  const tool = kind === 'uid' ? 'newuidmap' : 'newgidmap';
  try {
    host.runIdMapTool(tool, [String(pid), ...maps.flatMap((m) => [m.containerID, m.hostID, m.size].map(String))]);
  } catch (err) {
    throw new TsrunError(`${field}: ${(err as Error).message}`);
  }
}
