/**
 * `tsrun bundle REF DIR` and `run --image`: the runtime config for an
 * image (convert.ts), with the user resolved through the image's own
 * /etc/passwd and /etc/group, read from its layers as the merged overlay
 * would show them (merged.ts).  The rootfs itself is mounted by create (rootfs.ts).
 */
import fs = require('fs');
import path = require('path');
import { isCgroup2Unified } from '../cgroup';
import { Config } from '../config';
import { describeFsError, TsrunError } from '../errors';
import { removeTree } from '../remove-tree';
import { BundleOverrides, convertImageConfig, ImageConfig } from './convert';
import { readImageFile } from './merged';
import { ImageStore } from './store';

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
  return convertImageConfig(imageConfig, { id: image.config, store: path.resolve(store.root), ref: name }, files, overrides, {
    cgroupNamespace: isCgroup2Unified(),
  });
}

/**
 * Write a bundle: DIR/config.json and an empty DIR/rootfs, where create
 * attaches the image's overlay (in the container's mount namespace only).
 * DIR may exist but must hold no config.json.  The config is 0600: its
 * environment may carry secrets (-e), and only root runs it anyway.
 */
export function writeBundle(store: ImageStore, ref: string, dir: string, overrides: BundleOverrides = {}): void {
  const config = imageBundleConfig(store, ref, overrides);
  const file = path.join(dir, 'config.json');
  const made = !fs.existsSync(dir);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.writeFileSync(file, JSON.stringify(config, null, '\t') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TsrunError(`${file} already exists; remove it first`);
    throw new TsrunError(describeFsError(err, file));
  }
  try {
    fs.mkdirSync(path.join(dir, config.root!.path), { mode: 0o755 });
  } catch (err) {
    if (made) removeTree(dir);
    else fs.rmSync(file, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TsrunError(`${path.join(dir, config.root!.path)} already exists; remove it first`);
    throw new TsrunError(describeFsError(err, path.join(dir, config.root!.path)));
  }
}
