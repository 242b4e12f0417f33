/**
 * Reading an image's layers as the merged overlay would show them, without
 * mounting it: the topmost layer that has a path wins; a whiteout, an
 * opaque directory or a non-directory on the way hides what lies below.
 * bundle.ts reads the image's /etc/passwd and /etc/group this way; the
 * unpacker asks it for the attributes of a directory a layer needs but does
 * not list (see unpack.ts's `inherit`).  Symlinks are never followed.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { native } from '../native';

const isWhiteout = (st: fs.Stats): boolean => st.isCharacterDevice() && st.rdev === 0; // overlay's 0/0

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/**
 * Where `rel` shows in the merged view of `layerDirs` (lowest first): the
 * layer it comes from and its lstat, or undefined if the view has nothing
 * there.  A symlink on the way is reported as `through` (not followed).
 */
export function lookupMerged(
  layerDirs: string[],
  rel: string,
): { layer: string; stat: fs.Stats } | { through: string } | undefined {
  const parts = rel.split('/').filter((p) => p && p !== '.');
  for (const layer of [...layerDirs].reverse()) {
    let hidesBelow = false;
    let prefix = layer;
    for (let i = 0; i < parts.length; i++) {
      prefix = path.join(prefix, parts[i]);
      const st = lstatOrNull(prefix);
      if (!st) break; // not in this layer: look below (unless an opaque dir above says no)
      if (isWhiteout(st)) return undefined;
      if (i === parts.length - 1) return { layer, stat: st };
      if (st.isSymbolicLink()) return { through: parts.slice(0, i + 1).join('/') };
      if (!st.isDirectory()) return undefined;
      if (native.layerIsOpaque(prefix)) hidesBelow = true;
    }
    if (parts.length === 0) return { layer, stat: fs.lstatSync(layer) };
    if (hidesBelow) return undefined;
  }
  return undefined;
}

/** A regular file of the image's merged view, or undefined; a symlink is refused by name. */
export function readImageFile(layerDirs: string[], rel: string): Buffer | undefined {
  const found = lookupMerged(layerDirs, rel);
  if (!found) return undefined;
  if ('through' in found)
    throw new TsrunError(`the image's /${found.through} is a symlink; cannot read /${rel} through it`);
  if (found.stat.isSymbolicLink()) throw new TsrunError(`the image's /${rel} is a symlink; cannot read it`);
  if (!found.stat.isFile()) return undefined;
  const root = native.layerOpenRoot(found.layer);
  try {
    const fd = native.layerOpenFile(root, rel);
    try {
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    native.close(root);
  }
}

/** A directory's owner, mode and mtime in the merged view, for a layer that needs it but does not list it. */
export function mergedDirAttributes(
  layerDirs: string[],
  rel: string,
): { mode: number; uid: number; gid: number; mtimeMs: number } | undefined {
  const found = lookupMerged(layerDirs, rel);
  if (!found || 'through' in found || !found.stat.isDirectory()) return undefined;
  return { mode: found.stat.mode & 0o7777, uid: found.stat.uid, gid: found.stat.gid, mtimeMs: found.stat.mtimeMs };
}
