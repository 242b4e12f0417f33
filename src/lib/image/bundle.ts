/**
 * `tsrun bundle REF DIR` and `run --image`: the runtime config for an
 * image (convert.ts), with the user resolved through the image's own
 * /etc/passwd and /etc/group, read from its layers as the merged overlay
 * would show them (merged.ts).  The rootfs itself is mounted by create (rootfs.ts).
 */
import fs = require('fs');
import path = require('path');
import { isCgroup2Unified } from '../cgroup';
import { type Config } from '../config';
import { describeFsError, TsrunError } from '../errors';
import { removeTree } from '../remove-tree';
import { spawnSync } from 'child_process';
import { native } from '../native';
import {
  type BundleOverrides,
  convertImageConfig,
  IMAGE_ANNOTATION,
  type ImageConfig,
  REF_ANNOTATION,
  STORE_ANNOTATION,
} from './convert';
import { readImageFile } from './merged';
import { overlayOfLayers } from './rootfs';
import { type ImageRecord, type ImageStore } from './store';
import { isUserStoreCaller, recordedStoreMaps, userStoreMaps } from './user-store';

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
  return convertImageConfig(
    imageConfig,
    { id: image.config, store: path.resolve(store.root), ref: name },
    files,
    overrides,
    {
      cgroupNamespace: isCgroup2Unified(),
      userStore: isUserStoreCaller() ? (recordedStoreMaps(store.root) ?? userStoreMaps()) : undefined,
    },
  );
}

/**
 * Write a bundle: DIR/config.json and an empty DIR/rootfs, where create
 * attaches the image's overlay (in the container's mount namespace only).
 * With `copy`, DIR/rootfs is instead the image's tree itself, as `umoci
 * unpack` writes one, and the config names no image: a plain bundle any
 * runtime runs.  DIR may exist but must hold no config.json.  The config
 * is 0600: its environment may carry secrets (-e), and only root runs it
 * anyway.
 */
export function writeBundle(
  store: ImageStore,
  ref: string,
  dir: string,
  overrides: BundleOverrides = {},
  copy = false,
): void {
  // Resolved once: the config and a copied tree are of one image even if the name moves meanwhile.
  const { image } = store.resolve(ref);
  const config = imageBundleConfig(store, copy ? image.config : ref, overrides);
  if (copy) for (const key of [IMAGE_ANNOTATION, STORE_ANNOTATION, REF_ANNOTATION]) delete config.annotations?.[key];
  const file = path.join(dir, 'config.json');
  const made = !fs.existsSync(dir);
  // A copied tree holds the image's setuid binaries and device nodes on a
  // filesystem that honours both: only root may reach them (docs/security.md).
  if (copy && !made && fs.statSync(dir).mode & 0o011) {
    throw new TsrunError(
      `${dir}: other users can enter it (mode ${(fs.statSync(dir).mode & 0o777).toString(8)}), and --copy puts the image's setuid files and device nodes there; use a directory only root can enter (0700), or a new one`,
    );
  }
  try {
    fs.mkdirSync(dir, { recursive: true, mode: copy ? 0o700 : 0o755 });
    fs.writeFileSync(file, JSON.stringify(config, null, '\t') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new TsrunError(`${file} already exists; remove it first`);
    throw new TsrunError(describeFsError(err, file));
  }
  try {
    fs.mkdirSync(path.join(dir, config.root!.path), { mode: 0o755 });
  } catch (err) {
    if (made) removeTree(dir);
    else fs.rmSync(file, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new TsrunError(`${path.join(dir, config.root!.path)} already exists; remove it first`);
    throw new TsrunError(describeFsError(err, path.join(dir, config.root!.path)));
  }
  if (!copy) return;
  try {
    copyImageTree(store, image, ref, path.join(dir, config.root!.path));
  } catch (err) {
    if (made) removeTree(dir);
    else {
      removeTree(path.join(dir, config.root!.path));
      fs.rmSync(file, { force: true });
    }
    throw err;
  }
}

/**
 * The image's merged tree copied into `target` (an empty directory): its
 * layers through a read-only view of the overlay, mounted nowhere (a
 * detached mount, read through /proc/self/fd), so whiteouts and opaque
 * directories are applied by the kernel as a container would see them,
 * and cp -a keeps owners, modes, times, xattrs, hard links and device
 * nodes (made with mknod, never opened: the overlay is nodev).
 */
function copyImageTree(store: ImageStore, image: ImageRecord, ref: string, target: string): void {
  store.withLock('shared', () => {
    const tmp = store.tempDir();
    let mnt = -1;
    try {
      mnt = overlayOfLayers(store, image.layers, tmp, 'tsrun-bundle-copy', `copy of image ${ref}`);
      // cp gets the mount as its fd 3; the tree's root mode and owner come with "/.".
      const cp = spawnSync('cp', ['-a', '--reflink=auto', '/proc/self/fd/3/.', target], {
        stdio: ['ignore', 'ignore', 'pipe', mnt],
        encoding: 'utf8',
      });
      if (cp.status !== 0)
        throw new TsrunError(
          `copy of image ${ref} into ${target}: ${(cp.stderr || `cp: status ${cp.status}`).trim().split('\n')[0]}`,
        );
    } finally {
      if (mnt >= 0) native.close(mnt);
      removeTree(tmp);
    }
  });
}
