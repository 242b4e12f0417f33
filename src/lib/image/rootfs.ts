/**
 * The rootfs of a container made from an image: an overlay of the image's
 * layers (shared, read-only) under an upper and work dir of its own.  It is
 * mounted by `create` at the bundle's root.path and taken down by `delete`,
 * so a bundle on disk never holds a mount, and every container of one image
 * gets a fresh upper.  (Mounting when the bundle is made would leave mounts
 * behind for bundles nobody runs, and share one upper between containers.)
 *
 * The order is chosen so that a tsrun killed at any step leaves something
 * `delete --force` can clean, and never a layer gc could take from under a
 * running container:
 *   1. <state dir>/image-rootfs.json records the intent: store, key, mountpoint;
 *   2. under the store's shared lock (gc takes it exclusive):
 *      <store>/containers/<key>/ with use.json, upper/ and work/, then the mount.
 * release() reads the intent back: unmounts the overlay if it is still ours,
 * removes the key's directory, then the intent.
 */
import fs = require('fs');
import path = require('path');
import { Config } from '../config';
import { describeFsError, TsrunError } from '../errors';
import { native } from '../native';
import { IMAGE_ANNOTATION, ImageSource, REF_ANNOTATION, STORE_ANNOTATION } from './convert';
import { ContainerUse, ImageStore, mountAt, releaseUse, sourceOf } from './store';

const INTENT_FILE = 'image-rootfs.json';

interface Intent {
  store: string;
  key: string;
  mountpoint: string;
}

/** The image a config's rootfs comes from (its org.tsrun.image.* annotations), if any. */
export function imageOfConfig(config: Config): ImageSource | undefined {
  const a = config.annotations ?? {};
  if (a[IMAGE_ANNOTATION] === undefined) return undefined;
  if (!/^sha256:[0-9a-f]{64}$/.test(a[IMAGE_ANNOTATION])) throw new TsrunError(`annotations.${IMAGE_ANNOTATION}: "${a[IMAGE_ANNOTATION]}" is not a sha256 digest`);
  if (!a[STORE_ANNOTATION] || !path.isAbsolute(a[STORE_ANNOTATION])) throw new TsrunError(`annotations.${STORE_ANNOTATION}: an absolute path to the image store is needed`);
  return { id: a[IMAGE_ANNOTATION], store: a[STORE_ANNOTATION], ref: a[REF_ANNOTATION] ?? a[IMAGE_ANNOTATION] };
}

/** Tests set this to take the pre-6.8 path (one mount(2) call) on a newer kernel too. */
const forceLegacyMount = (): boolean => process.env.TSRUN_TEST_OVERLAY_LEGACY === '1';

/**
 * Mount the image's overlay at `mountpoint` for container `id`, whose
 * state directory is `stateDir`.  On failure nothing is left but what
 * release() removes, and release() has been called.
 */
export function mountImageRootfs(stateDir: string, id: string, rootfs: string, image: ImageSource): void {
  const store = new ImageStore(image.store);
  if (!fs.existsSync(store.root)) throw new TsrunError(`annotations.${STORE_ANNOTATION}: no image store at ${store.root}`);
  let mountpoint: string;
  try {
    mountpoint = fs.realpathSync(rootfs); // as mountinfo will name it
  } catch (err) {
    throw new TsrunError(describeFsError(err, `root.path ${rootfs}`));
  }
  // crypto loads only here: create is a hot path.
  const intent: Intent = { store: store.root, key: (require('crypto') as typeof import('crypto')).randomUUID(), mountpoint };
  writeIntent(stateDir, intent);
  try {
    store.withLock('shared', () => {
      const record = Object.values(store.images()).find((img) => img.config === image.id);
      if (!record) throw new TsrunError(`image ${image.ref} (${image.id}) is no longer in the store ${store.root}`);
      const missing = record.layers.find((d) => !store.hasLayer(d));
      if (missing) throw new TsrunError(`image ${image.ref}: layer ${missing} is missing from the store ${store.root}`);
      const there = mountAt(mountpoint);
      if (there) throw new TsrunError(`rootfs ${mountpoint} is already a mount point (${there.fstype} ${there.source}): is another container using this bundle?`);
      const dir = store.useDir(intent.key);
      fs.mkdirSync(dir, { mode: 0o700 });
      // Absolute: gc, from any directory, tells a live container by this path.
      const use: ContainerUse = { stateDir: path.resolve(stateDir), id, image: image.id, layers: record.layers, mountpoint };
      fs.writeFileSync(path.join(dir, 'use.json'), JSON.stringify(use), { mode: 0o600 });
      const lowers = record.layers.map((d) => store.layerPath(d)).reverse(); // overlayfs lists the topmost first
      const upper = path.join(dir, 'upper');
      const work = path.join(dir, 'work');
      fs.mkdirSync(upper);
      fs.mkdirSync(work, { mode: 0o700 });
      // The upper's root is the merged root's: give it the image's own mode and owner.
      const top = fs.statSync(lowers[0]);
      fs.chmodSync(upper, top.mode & 0o7777);
      fs.chownSync(upper, top.uid, top.gid);
      try {
        native.overlayMount(mountpoint, sourceOf(intent.key), lowers, upper, work, forceLegacyMount());
      } catch (err) {
        throw new TsrunError(`image rootfs on ${mountpoint}: ${(err as Error).message}`);
      }
    });
  } catch (err) {
    releaseImageRootfs(stateDir);
    if (err instanceof TsrunError) throw err;
    throw new TsrunError(describeFsError(err, `image rootfs for ${mountpoint}`));
  }
}

function writeIntent(stateDir: string, intent: Intent): void {
  const file = path.join(stateDir, INTENT_FILE);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(intent), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * Take down the image rootfs of the container whose state directory is
 * `stateDir`, if it has one: unmount, remove its upper and work dirs.
 * Safe to call again, and at any point a create may have died.
 */
export function releaseImageRootfs(stateDir: string): void {
  let intent: Intent;
  try {
    intent = JSON.parse(fs.readFileSync(path.join(stateDir, INTENT_FILE), 'utf8')) as Intent;
  } catch {
    return; // no image rootfs (or the intent never got written: nothing was made)
  }
  releaseUse(new ImageStore(intent.store), intent.key, intent.mountpoint);
  fs.rmSync(path.join(stateDir, INTENT_FILE), { force: true });
}
