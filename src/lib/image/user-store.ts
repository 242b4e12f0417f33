/**
 * A user's image store (issue 20): images for tsrun run by a user other
 * than root, as rootless podman keeps them.
 *
 * The problem: a layer's files belong to many uids and gids (root, daemon,
 * www-data...), carry setuid bits and overlayfs's whiteouts (0/0 character
 * devices) and opaque marks (an xattr in trusted.*).  A user may chown to
 * no id but its own and may set no trusted.* attribute.  What it may do is
 * create a user namespace whose ids it maps to its own uid and to the
 * subordinate ranges /etc/subuid and /etc/subgid give it (through the
 * setuid newuidmap and newgidmap).  As root there, over a store it owns:
 *   - files may be given any mapped id: a layer's uid 33 is stored as the
 *     user's subordinate uid 33 (its uid 0 as the user itself);
 *   - whiteouts may be made (the kernel lets anyone mknod 0/0);
 *   - overlayfs mounts with `userxattr`, reading its attributes from
 *     user.overlay.*, where the opaque mark is written instead.
 * Measured on this machine's kernel (6.18); overlayfs mounts in a user
 * namespace since Linux 5.11 (Debian 12's own 6.1 has it).
 *
 * So everything that writes the store's trees runs in such a namespace,
 * the "store namespace": a new user and mount namespace with the user's
 * full map, entered by tsrun-init (the same helper and map-writing
 * protocol as a container's, launch.ts), which then runs tsrun itself
 * again there (STORE_NAMESPACE_ENV tells it where it is):
 *   - image import runs there whole;
 *   - a container's overlay is made there and its fd passed back over a
 *     unix socket; the container's init attaches it in its own mount
 *     namespace, as for root (rootfs.ts).  The overlay's mounter is root
 *     of the store namespace: its copy-ups can give a file any mapped id;
 *   - removing layers and a container's upper (image rm, gc, delete) runs
 *     there (a subordinate uid's directory is not the user's to empty).
 * Everything else (images.json, the locks, which containers still hold
 * an overlay) is done by the user's own tsrun, which alone can see its
 * containers' mount namespaces (it owns their user namespaces; the store
 * namespace is their sibling and may not look into them).
 *
 * The store's map is kept in <store>/idmap.json, and its containers must
 * use it (linux.uidMappings and gidMappings; `run --image` and `bundle`
 * write it): another map would show the files' owners as nobody, and a
 * copy-up could not keep them.  If /etc/subuid changes, the store must be
 * made again, as podman's does (podman system migrate).
 *
 * Rejected, and why:
 *   - id-mapped mounts of a root-owned store: mount_setattr with an
 *     id map needs CAP_SYS_ADMIN in the host's namespace;
 *   - fuse-overlayfs: this kernel's overlayfs mounts in a user namespace
 *     (and a FUSE daemon would live as long as each container);
 *   - a plain copy of every layer per container (podman's vfs driver):
 *     the space of the whole image each time, and no layer stored once.
 * What a user's store cannot hold: device nodes other than whiteouts (a
 * user namespace may not mknod them; they are left out with a warning, as
 * containers/storage leaves them out rootless) and trusted.* attributes.
 */
import fs = require('fs');
import os = require('os');
import path = require('path');
import { type IDMapping } from '../config';
import { TsrunError } from '../errors';
import { inUserNamespace, passwdName } from '../host';
import { parseIdMap } from '../idmap';

/** Set by the tsrun that runs another in the store namespace. */
export const STORE_NAMESPACE_ENV = 'TSRUN_STORE_NAMESPACE';

/** The file in a user's store that records the map its files were written with. */
export const STORE_MAP_FILE = 'idmap.json';

export interface StoreMaps {
  uidMappings: IDMapping[];
  gidMappings: IDMapping[];
}

/** The kernel takes at most 340 lines in a uid_map or gid_map (user_namespaces(7)). */
const MAX_MAP_LINES = 340;

/**
 * The ranges `/etc/subuid`-format `text` gives the user `name` (lines
 * "name:start:count", or "uid:start:count" as shadow's tools accept), in
 * file order.
 */
export function subordinateRanges(text: string, name: string | undefined, id: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (!/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '') || Number(count) === 0) continue;
    if (who === name || who === String(id)) out.push([Number(start), Number(count)]);
  }
  return out;
}

/**
 * The maps of a user's store and of its image containers, as rootless
 * podman maps them: the user's own id as 0, its subordinate ids from 1 on,
 * range after range.  `file` names the ranges' file in the error.
 */
export function storeMapOf(ownId: number, ranges: Array<[number, number]>, file: string, who: string): IDMapping[] {
  if (ranges.length === 0)
    throw new TsrunError(
      `${file} gives ${who} no subordinate ids: a user's image store needs them for the image's owners (usermod --add-subuids/--add-subgids)`,
    );
  const maps: IDMapping[] = [{ containerID: 0, hostID: ownId, size: 1 }];
  let next = 1;
  for (const [start, count] of ranges.slice(0, MAX_MAP_LINES - 1)) {
    maps.push({ containerID: next, hostID: start, size: count });
    next += count;
  }
  return maps;
}

/** This user's store maps, from /etc/subuid and /etc/subgid. */
export function userStoreMaps(): StoreMaps {
  const uid = process.geteuid!();
  const gid = process.getegid!();
  const name = passwdName(uid);
  const who = name ? `user ${name} (uid ${uid})` : `uid ${uid}`;
  const read = (file: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return ''; // no file: no ranges
    }
  };
  return {
    uidMappings: storeMapOf(uid, subordinateRanges(read('/etc/subuid'), name, uid), '/etc/subuid', who),
    gidMappings: storeMapOf(gid, subordinateRanges(read('/etc/subgid'), name, uid), '/etc/subgid', who),
  };
}

/**
 * Whether this tsrun runs in a store namespace: its parent said so, and
 * it is root in a user namespace (the variable alone, set by anyone, makes
 * nothing of an ordinary run).
 */
export function inStoreNamespace(): boolean {
  return process.env[STORE_NAMESPACE_ENV] === '1' && process.geteuid?.() === 0 && inUserNamespace();
}

/** Whether the store is a user's: tsrun runs as a user, or as root of a store namespace. */
export function isUserStoreCaller(): boolean {
  return process.geteuid?.() !== 0 || inStoreNamespace();
}

/** A user's default store: $XDG_DATA_HOME/tsrun, else ~/.local/share/tsrun (where podman keeps its own). */
export function defaultUserStore(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME)) return path.join(env.XDG_DATA_HOME, 'tsrun');
  const home = env.HOME || os.homedir();
  return path.join(home, '.local', 'share', 'tsrun');
}

/** The map the store was written with, if it records one. */
export function recordedStoreMaps(store: string): StoreMaps | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(store, STORE_MAP_FILE), 'utf8')) as StoreMaps;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TsrunError(`${path.join(store, STORE_MAP_FILE)}: ${(err as Error).message}`);
  }
}

const sameMaps = (a: IDMapping[] | undefined, b: IDMapping[] | undefined): boolean =>
  JSON.stringify(a ?? []) === JSON.stringify(b ?? []);

const showMaps = (maps: IDMapping[]): string => maps.map((m) => `${m.containerID}:${m.hostID}:${m.size}`).join(',');

/**
 * The store's recorded map against `maps`: an error naming `field` when
 * they differ.  Nothing recorded: a store no import has written yet.
 */
export function checkStoreMaps(store: string, maps: StoreMaps, what: string): void {
  const recorded = recordedStoreMaps(store);
  if (!recorded) return;
  for (const kind of ['uid', 'gid'] as const) {
    const key = `${kind}Mappings` as const;
    if (!sameMaps(recorded[key], maps[key]))
      throw new TsrunError(
        `${what}: the image store ${store} holds files written with the ${kind} map ${showMaps(recorded[key])}, not ${showMaps(maps[key])}; ` +
          `its containers need that map (a store made before /etc/sub${kind} changed must be made again)`,
      );
  }
}

/** In the store namespace, when a store is made: record the map its files are written with. */
export function recordStoreMaps(store: string): void {
  const file = path.join(store, STORE_MAP_FILE);
  if (fs.existsSync(file)) return;
  const maps: StoreMaps = {
    uidMappings: parseIdMap(fs.readFileSync('/proc/self/uid_map', 'utf8')),
    gidMappings: parseIdMap(fs.readFileSync('/proc/self/gid_map', 'utf8')),
  };
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(maps) + '\n', { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

/** The highest uid and gid the store namespace maps (a layer's owner above them cannot be kept). */
export function mappedIdLimits(): { uid: number; gid: number } {
  const top = (maps: IDMapping[]): number => Math.max(-1, ...maps.map((m) => m.containerID + m.size - 1));
  return {
    uid: top(parseIdMap(fs.readFileSync('/proc/self/uid_map', 'utf8'))),
    gid: top(parseIdMap(fs.readFileSync('/proc/self/gid_map', 'utf8'))),
  };
}
