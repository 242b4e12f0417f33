/**
 * `tsrun bundle REF DIR` and `run --image`: the runtime config for an
 * image (convert.ts), with the user resolved through the image's own
 * /etc/passwd and /etc/group, read from its layers as the merged overlay
 * would show them.  The rootfs itself is mounted by create (rootfs.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Config } from '../config';
import { describeFsError, TsrunError } from '../errors';
import { native } from '../native';
import { BundleOverrides, convertImageConfig, ImageConfig } from './convert';
import { ImageStore } from './store';

const WHITEOUT_DEV = 0; // overlay whiteouts are character devices 0/0

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

const isWhiteout = (st: fs.Stats): boolean => st.isCharacterDevice() && st.rdev === WHITEOUT_DEV;

/**
 * A regular file of the image, as the merged overlay would show it: the
 * topmost layer that has the path wins; a whiteout, an opaque directory or
 * a non-directory on the way hides what lies below.  Symlinks are not
 * followed (a passwd behind one is refused by name).
 */
export function readImageFile(layerDirs: string[], rel: string): Buffer | undefined {
  const parts = rel.split('/').filter(Boolean);
  for (const layer of [...layerDirs].reverse()) {
    let stop = false;
    let prefix = layer;
    for (let i = 0; i < parts.length; i++) {
      prefix = path.join(prefix, parts[i]);
      const st = lstatOrNull(prefix);
      if (!st) break; // not in this layer: look below
      if (isWhiteout(st)) return undefined;
      if (i < parts.length - 1) {
        if (!st.isDirectory()) {
          if (st.isSymbolicLink()) throw new TsrunError(`the image's /${parts.slice(0, i + 1).join('/')} is a symlink; cannot read /${rel} through it`);
          return undefined;
        }
        if (native.layerIsOpaque(prefix)) stop = true; // trusted.overlay.opaque: nothing below shows
        continue;
      }
      if (st.isSymbolicLink()) throw new TsrunError(`the image's /${rel} is a symlink; cannot read it`);
      if (!st.isFile()) return undefined;
      const root = native.layerOpenRoot(layer);
      try {
        const fd = native.layerOpenFile(root, parts.join('/'));
        try {
          return fs.readFileSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      } finally {
        native.close(root);
      }
    }
    if (stop) return undefined;
  }
  return undefined;
}

/** The runtime config for a container of image `ref` in `store`. */
export function imageBundleConfig(store: ImageStore, ref: string, overrides: BundleOverrides = {}): Config {
  const { ref: name, image } = store.resolve(ref);
  let imageConfig: ImageConfig;
  try {
    imageConfig = JSON.parse(store.readBlob(image.config).toString('utf8')) as ImageConfig;
  } catch (err) {
    throw new TsrunError(`image ${name}: config ${image.config}: ${(err as Error).message}`);
  }
  const layerDirs = image.layers.map((d) => store.layerPath(d));
  const files = {
    passwd: readImageFile(layerDirs, 'etc/passwd')?.toString('utf8'),
    group: readImageFile(layerDirs, 'etc/group')?.toString('utf8'),
  };
  return convertImageConfig(imageConfig, { id: image.config, store: path.resolve(store.root), ref: name }, files, overrides);
}

/**
 * Write a bundle: DIR/config.json and an empty DIR/rootfs, where create
 * mounts the image's overlay.  DIR may exist but must hold no config.json.
 */
export function writeBundle(store: ImageStore, ref: string, dir: string, overrides: BundleOverrides = {}): void {
  const config = imageBundleConfig(store, ref, overrides);
  const file = path.join(dir, 'config.json');
  const made = !fs.existsSync(dir);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.writeFileSync(file, JSON.stringify(config, null, '\t') + '\n', { flag: 'wx', mode: 0o644 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TsrunError(`${file} already exists; remove it first`);
    throw new TsrunError(describeFsError(err, file));
  }
  try {
    fs.mkdirSync(path.join(dir, config.root!.path), { mode: 0o755 });
  } catch (err) {
    fs.rmSync(made ? dir : file, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TsrunError(`${path.join(dir, config.root!.path)} already exists; remove it first`);
    throw new TsrunError(describeFsError(err, path.join(dir, config.root!.path)));
  }
}
