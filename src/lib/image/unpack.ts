/**
 * One image layer, from its (gzip or plain) tar stream into a directory:
 * the changeset rules of image-spec layer.md, with whiteouts turned into
 * overlayfs's form (a 0/0 character device; trusted.overlay.opaque=y),
 * and the overlay's own control xattrs in a layer dropped.
 *
 * tar-stream parses; every write goes through native/layer.c, which
 * resolves each path beneath the layer directory's fd and never through a
 * symlink.  Names are made relative first ("../x" and "/x" both mean x,
 * inside the layer), so traversal is contained, and anything that would
 * need a symlink or a hardlink out of the layer is refused by name.
 * The uncompressed stream is hashed on the way: its sha256 is the layer's
 * diffID, which the caller checks against the image config.
 */
import { createHash } from 'crypto';
import fs = require('fs');
import path = require('path');
import { pipeline as streamPipeline, Readable } from 'stream';
import zlib = require('zlib');
import tar = require('tar-stream');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { native } from '../native';

/** What native/layer.c is asked to make (its enum layer_kind). */
export const EntryKind = {
  FILE: 0,
  DIR: 1,
  SYMLINK: 2,
  HARDLINK: 3,
  CHAR: 4,
  BLOCK: 5,
  FIFO: 6,
  WHITEOUT: 7,
  OPAQUE: 8,
  /** Opaque for an overlay mounted with userxattr: a user's store (user-store.ts). */
  OPAQUE_USER: 9,
} as const;

export interface LayerEntry {
  kind: number;
  /** Relative to the layer directory, normalised; "." for the layer's root. */
  name: string;
  linkname: string;
  mode: number;
  uid: number;
  gid: number;
  major: number;
  minor: number;
  mtimeSec: number;
  mtimeNsec: number;
  xattrs: Array<[string, Buffer]>;
}

const WHITEOUT_PREFIX = '.wh.';
const EOPNOTSUPP = 95;
const OPAQUE_MARKER = '.wh..wh..opq';
const XATTR_PREFIX = 'SCHILY.xattr.';

/**
 * The xattrs a layer may not set: overlayfs's control attributes (opaque,
 * redirect, origin, metacopy, upper, impure, nlink, uuid, whiteout... and
 * their escaped trusted.overlay.overlay.* forms), which the overlay reads
 * from trusted.overlay.*, or from user.overlay.* when mounted with
 * userxattr.  They are not a file's metadata but instructions to the host
 * kernel that assembles the rootfs from the layers: a redirect shows
 * another directory of the layers below in a directory's place (a "bin2"
 * redirected to /etc showed /etc), metacopy takes a file's data from
 * another one, opaque hides what is below.  A layer says what it needs of
 * this only through .wh. entries (layer.md), which entryOf turns into the
 * overlay's form here, so the layer's own are dropped, with a warning.
 *
 * Every other xattr is kept, as containerd (pkg/archive/tar.go) and moby
 * (go-archive) keep them, applying every SCHILY.xattr record of a layer:
 * - security.capability: file capabilities (ping, arping), which images
 *   rely on, and the one xattr both write into the layers they make.  An
 *   exec gains them only within the container's bounding set, as the
 *   config decides, like a setuid root file the layer may hold anyway.
 * - security.selinux, security.SMACK64*: labels.  They count only where
 *   that LSM is active, and there what a label (or a change of domain at
 *   exec) gives is the host policy's to grant, as a setuid bit gives what
 *   the container's credentials allow.
 * - system.posix_acl_access/default (and XFS's trusted.SGI_ACL_*, the
 *   same ACLs): access to the image's own files, as the owners and modes
 *   the layer sets do.
 * - security.ima, security.evm: appraisal data.  A signature counts only
 *   when a key in the host's keyrings verifies it, so a layer cannot forge
 *   trust, and IMA-signed images need them kept.
 * - trusted.* otherwise and user.*: no meaning to the kernel.
 */
const OVERLAY_CONTROL_XATTR = /^(?:trusted|user)\.overlay\./;

/** "../a/./b/" and "/a/b" both become "a/b"; the root is ".". */
export function layerRelative(name: string): string {
  const rel = path.posix
    .normalize('/' + name)
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');
  return rel === '' ? '.' : rel;
}

const HEADER_KINDS: Record<string, number> = {
  file: EntryKind.FILE,
  'contiguous-file': EntryKind.FILE,
  directory: EntryKind.DIR,
  symlink: EntryKind.SYMLINK,
  link: EntryKind.HARDLINK,
  'character-device': EntryKind.CHAR,
  'block-device': EntryKind.BLOCK,
  fifo: EntryKind.FIFO,
};

/**
 * A tar header as the entry native/layer.c makes, or why it cannot be one.
 * `dropped` hears of an entry's overlay control xattrs, left out.
 */
export function entryOf(header: tar.Header, dropped: (name: string, xattrs: string[]) => void = () => {}): LayerEntry {
  const name = layerRelative(header.name);
  const base = path.posix.basename(name);
  const dir = path.posix.dirname(name);
  const mtime = header.mtime instanceof Date ? header.mtime.getTime() : 0;
  const entry: LayerEntry = {
    kind: HEADER_KINDS[header.type] ?? -1,
    name,
    linkname: '',
    mode: header.mode ?? 0o644,
    uid: header.uid ?? 0,
    gid: header.gid ?? 0,
    major: header.devmajor ?? 0,
    minor: header.devminor ?? 0,
    mtimeSec: Math.floor(mtime / 1000),
    mtimeNsec: (mtime % 1000) * 1e6,
    xattrs: [],
  };
  if (entry.kind < 0) throw new Error(`unsupported tar entry type ${JSON.stringify(header.type)}`);
  if (base === OPAQUE_MARKER) return { ...entry, kind: EntryKind.OPAQUE, name: dir };
  if (base.startsWith(WHITEOUT_PREFIX)) {
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw new Error('a whiteout must name a file');
    return { ...entry, kind: EntryKind.WHITEOUT, name: dir === '.' ? hidden : `${dir}/${hidden}` };
  }
  if (name === '.' && entry.kind !== EntryKind.DIR) throw new Error('only a directory can be the layer root');
  if (entry.kind === EntryKind.HARDLINK) entry.linkname = layerRelative(header.linkname ?? '');
  if (entry.kind === EntryKind.SYMLINK) entry.linkname = header.linkname ?? '';
  const refused: string[] = [];
  for (const [key, value] of Object.entries((header.pax ?? {}) as Record<string, string>)) {
    if (!key.startsWith(XATTR_PREFIX)) continue;
    const xattr = key.slice(XATTR_PREFIX.length);
    if (OVERLAY_CONTROL_XATTR.test(xattr)) refused.push(xattr);
    else entry.xattrs.push([xattr, Buffer.from(value, 'latin1')]);
  }
  if (refused.length) dropped(name, refused);
  return entry;
}

/**
 * tar-stream decodes every PAX value as UTF-8, which mangles binary
 * extended attributes (security.capability is binary).  Until it keeps
 * bytes, xattr values are decoded as latin1 here, byte for byte, and
 * entryOf turns them back into the exact bytes.  A test of a binary
 * capability catches a tar-stream that stops calling this.
 */
function keepXattrBytes(): void {
  const headers = require(path.join(path.dirname(require.resolve('tar-stream')), 'headers.js')) as {
    decodePax(buf: Buffer): Record<string, string>;
  };
  headers.decodePax = (buf: Buffer): Record<string, string> => {
    const result: Record<string, string> = {};
    while (buf.length) {
      const space = buf.indexOf(0x20);
      const len = parseInt(buf.subarray(0, space < 0 ? buf.length : space).toString('latin1'), 10);
      if (!len || space < 0) return result;
      const record = buf.subarray(space + 1, len - 1);
      const eq = record.indexOf(0x3d);
      if (eq < 0) return result;
      const key = record.subarray(0, eq).toString('utf8');
      result[key] = record.subarray(eq + 1).toString(key.startsWith(XATTR_PREFIX) ? 'latin1' : 'utf8');
      buf = buf.subarray(len);
    }
    return result;
  };
}
keepXattrBytes();

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** The uncompressed tar: gzip or plain, told by the first bytes' magic. */
async function decompressed(input: Readable, label: string): Promise<Readable> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const first = await it.next();
  const head = first.done ? Buffer.alloc(0) : Buffer.from(first.value);
  if (head.subarray(0, 4).equals(ZSTD_MAGIC))
    throw new TsrunError(
      `${label}: zstd-compressed layers (application/vnd.oci.image.layer.v1.tar+zstd) are not supported`,
    );
  const whole = Readable.from(
    (async function* () {
      if (head.length) yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield Buffer.from(r.value);
    })(),
    { objectMode: false },
  );
  return head.subarray(0, 2).equals(GZIP_MAGIC) ? streamPipeline(whole, zlib.createGunzip(), () => {}) : whole;
}

export interface UnpackResult {
  /** sha256 of the uncompressed tar: the layer's diffID. */
  diffID: string;
  entries: number;
}

/** A directory's attributes, for one a layer needs but does not list. */
export type InheritDir = (rel: string) => { mode: number; uid: number; gid: number; mtimeMs: number } | undefined;

/**
 * A layer unpacked into a user's store, in its store namespace
 * (user-store.ts): the highest uid and gid that namespace maps.
 */
export interface UserStoreLimits {
  uid: number;
  gid: number;
}

/**
 * An entry as a user's store keeps it, or undefined when it cannot be
 * kept at all (a device node: a user namespace may not make one).  The
 * opaque mark goes to user.overlay.*; trusted.* attributes, which only
 * the host's root may set, are left out (`dropped` hears of them); an
 * owner the namespace does not map is an error naming it.
 */
export function forUserStore(
  entry: LayerEntry,
  limits: UserStoreLimits,
  label: string,
  dropped: (name: string, xattrs: string[]) => void,
): LayerEntry | undefined {
  if (entry.kind === EntryKind.CHAR || entry.kind === EntryKind.BLOCK) return undefined;
  if (entry.uid > limits.uid || entry.gid > limits.gid)
    throw new TsrunError(
      `${label}: ${entry.name}: owned by ${entry.uid}:${entry.gid}, beyond the ids this user's store namespace maps (uids 0-${limits.uid}, gids 0-${limits.gid}: the user's own and its ranges in /etc/subuid and /etc/subgid)`,
    );
  const trusted = entry.xattrs.filter(([key]) => key.startsWith('trusted.')).map(([key]) => key);
  if (trusted.length) dropped(entry.name, trusted);
  return {
    ...entry,
    kind: entry.kind === EntryKind.OPAQUE ? EntryKind.OPAQUE_USER : entry.kind,
    xattrs: entry.xattrs.filter(([key]) => !key.startsWith('trusted.')),
  };
}

/** Every proper ancestor of a layer-relative name, outermost first ("a/b/c" -> "a", "a/b"). */
function ancestors(name: string): string[] {
  const parts = name === '.' ? [] : name.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * Unpack a layer into `dir` (an existing, empty directory).  `label`
 * names the layer in errors.  On error, what was written stays in `dir`
 * for the caller to remove.
 *
 * A layer may hold "a/b/c" without an entry for "a/b", or mark "a/b"
 * opaque without listing it.  The overlay shows such a directory with the
 * attributes it has in this layer, so it must not appear as a fresh 0755
 * root-owned one: `inherit` gives the attributes the layers below have for
 * it (the importer reads them from the image's lower layers), as applying
 * the layers one after another would keep them.
 *
 * `userStore`: the layer goes into a user's store, and this runs in its
 * store namespace (forUserStore says what changes).
 */
export async function unpackLayer(
  input: Readable,
  dir: string,
  label: string,
  inherit?: InheritDir,
  userStore?: UserStoreLimits,
): Promise<UnpackResult> {
  const root = native.layerOpenRoot(dir);
  const hash = createHash('sha256');
  const dirTimes: Array<[string, number, number]> = [];
  /** Directories this layer has made so far, listed or not. */
  const present = new Set<string>(['.']);
  const makeImplicit = (entry: LayerEntry): void => {
    const needed = [...ancestors(entry.name), ...(entry.kind === EntryKind.OPAQUE ? [entry.name] : [])];
    for (const rel of needed) {
      if (present.has(rel)) continue;
      present.add(rel);
      const attrs = inherit?.(rel);
      if (!attrs) continue; // the writer makes it 0755, owned by root
      const sec = Math.floor(attrs.mtimeMs / 1000);
      const nsec = Math.round((attrs.mtimeMs - sec * 1000) * 1e6);
      native.layerEntry(root, {
        kind: EntryKind.DIR,
        name: rel,
        linkname: '',
        mode: attrs.mode,
        uid: attrs.uid,
        gid: attrs.gid,
        major: 0,
        minor: 0,
        mtimeSec: sec,
        mtimeNsec: nsec,
        xattrs: [],
      });
      dirTimes.push([rel, sec, nsec]);
    }
  };
  let entries = 0;
  const devicesLeftOut: string[] = [];
  const extract = tar.extract();
  try {
    const tarStream = await decompressed(input, label);
    // The feeder hashes the tar on its way into the parser; the consumer
    // writes each entry.  A failure on either side stops both.
    const feed = (async () => {
      for await (const chunk of tarStream) {
        hash.update(chunk as Buffer);
        if (!extract.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              extract.off('drain', done);
              extract.off('close', done);
              resolve();
            };
            extract.on('drain', done);
            extract.on('close', done);
          });
        }
        if (extract.destroyed) return;
      }
      (extract as unknown as { end(): void }).end(); // streamx's typings want an argument end() does not need
    })();
    const consume = (async () => {
      for await (const source of extract) {
        entries++;
        let entry: LayerEntry | undefined;
        try {
          entry = entryOf(source.header, (name, xattrs) =>
            warn(
              `${label}: ${name}: dropped ${xattrs.join(', ')}: overlayfs control xattrs are not taken from a layer`,
            ),
          );
        } catch (err) {
          throw new TsrunError(`${label}: ${source.header.name}: ${(err as Error).message}`);
        }
        if (userStore) {
          const name = entry.name;
          entry = forUserStore(entry, userStore, label, (n, xattrs) =>
            warn(`${label}: ${n}: dropped ${xattrs.join(', ')}: a user's image store cannot hold trusted.* attributes`),
          );
          if (!entry) devicesLeftOut.push(name);
        }
        if (!entry) {
          for await (const chunk of source) void chunk; // a device node has no data; the stream moves on
          continue;
        }
        let fd = -1;
        try {
          makeImplicit(entry);
          fd = native.layerEntry(root, entry);
          for await (const chunk of source) if (fd >= 0) writeAll(fd, chunk as Buffer);
          if (fd >= 0) native.layerFinishFile(fd, entry);
          fd = -1;
        } catch (err) {
          if (fd >= 0) fs.closeSync(fd);
          if (err instanceof TsrunError) throw err;
          if (entry.kind === EntryKind.OPAQUE_USER && (err as { errno?: number }).errno === EOPNOTSUPP)
            throw new TsrunError(
              `${label}: ${entry.name}: the image store's filesystem keeps no user.* extended attributes (tmpfs before Linux 6.6 does not), which a user's overlay needs to mark a directory opaque; put the store on another filesystem (--store, $XDG_DATA_HOME)`,
            );
          throw new TsrunError(`${label}: ${(err as Error).message}`);
        }
        if (entry.kind === EntryKind.DIR) {
          present.add(entry.name);
          dirTimes.push([entry.name, entry.mtimeSec, entry.mtimeNsec]);
        }
      }
    })();
    const results = await Promise.allSettled([
      consume.catch((err) => {
        tarStream.destroy();
        throw err;
      }),
      feed.catch((err) => {
        extract.destroy(err as Error);
        throw err;
      }),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    // Directory times last, deepest first: writing inside a directory changes its mtime.
    for (const [name, sec, nsec] of dirTimes.reverse()) native.layerSetTimes(root, name, sec, nsec);
    if (devicesLeftOut.length)
      warn(
        `${label}: left out ${devicesLeftOut.length} device node${devicesLeftOut.length > 1 ? 's' : ''} (${devicesLeftOut.slice(0, 3).join(', ')}${devicesLeftOut.length > 3 ? ', ...' : ''}): a user's image store cannot make them`,
      );
  } catch (err) {
    if (err instanceof TsrunError) throw err;
    throw new TsrunError(`${label}: ${(err as Error).message}`);
  } finally {
    native.close(root);
  }
  return { diffID: `sha256:${hash.digest('hex')}`, entries };
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let off = 0; off < chunk.length;) off += fs.writeSync(fd, chunk, off);
}
