/**
 * The rootfs of a container made from an image: an overlay of the image's
 * layers (shared, read-only) under an upper and work dir of its own.
 * create makes it as a detached mount (native/overlay.c) and hands it to
 * the container's init, which attaches it at the bundle's root.path inside
 * the container's own mount namespace.  It is never mounted in the host's
 * namespace: there, every local user who could reach its path would find
 * the image's setuid binaries and device nodes live (and those the
 * container puts there), which is moby's CVE-2021-41091.  It lives as long
 * as the container's mount namespace, so it disappears with the
 * container's last process and delete has nothing to unmount.  A
 * createRuntime or prestart hook that wants the rootfs as the container
 * sees it enters the init's mount namespace (state.pid), as OCI hooks do.
 *
 * Every container of one image gets a fresh upper, and one bundle made by
 * `tsrun bundle` may run as several containers at once.
 *
 * The order is chosen so that a tsrun killed at any step leaves something
 * `delete --force` can clean, and never a layer gc could take from under a
 * running container:
 *   1. <state dir>/image-rootfs.json records the intent: store and key;
 *   2. under the store's shared lock (gc takes it exclusive):
 *      <store>/containers/<key>/ with use.json, upper/, work/ and staging/,
 *      then the overlay.
 * release() reads the intent back and removes the key's directory once no
 * mount namespace holds the overlay any more (store.ts releaseUse).
 */
import fs = require('fs');
import path = require('path');
import { type Config } from '../config';
import { describeFsError, TsrunError } from '../errors';
import { native } from '../native';
import { IMAGE_ANNOTATION, type ImageSource, REF_ANNOTATION, STORE_ANNOTATION } from './convert';
import { type ContainerUse, ImageStore, releaseUse, sourceOf } from './store';
import { checkStoreMaps, inStoreNamespace, recordedStoreMaps } from './user-store';

const INTENT_FILE = 'image-rootfs.json';

interface Intent {
  store: string;
  key: string;
}

/** The image a config's rootfs comes from (its org.tsrun.image.* annotations), if any. */
export function imageOfConfig(config: Config): ImageSource | undefined {
  const a = config.annotations ?? {};
  if (a[IMAGE_ANNOTATION] === undefined) return undefined;
  if (!/^sha256:[0-9a-f]{64}$/.test(a[IMAGE_ANNOTATION]))
    throw new TsrunError(`annotations.${IMAGE_ANNOTATION}: "${a[IMAGE_ANNOTATION]}" is not a sha256 digest`);
  if (!a[STORE_ANNOTATION] || !path.isAbsolute(a[STORE_ANNOTATION]))
    throw new TsrunError(`annotations.${STORE_ANNOTATION}: an absolute path to the image store is needed`);
  return { id: a[IMAGE_ANNOTATION], store: a[STORE_ANNOTATION], ref: a[REF_ANNOTATION] ?? a[IMAGE_ANNOTATION] };
}

/**
 * Whether a container of this config may use its image's store, checked
 * before create makes anything: a user's store (user-store.ts) serves only
 * containers of that user with the map its files were written with; root
 * uses stores of its own.
 */
export function checkImageStoreFor(config: Config, image: ImageSource, euid: number): void {
  const recorded = recordedStoreMaps(image.store);
  if (euid === 0) {
    if (recorded)
      throw new TsrunError(
        `annotations.${STORE_ANNOTATION}: ${image.store} is a user's image store (its files belong to that user's ids); root runs images from a store of its own`,
      );
    return;
  }
  checkStoreMaps(
    image.store,
    { uidMappings: config.linux?.uidMappings ?? [], gidMappings: config.linux?.gidMappings ?? [] },
    'linux.uidMappings and linux.gidMappings',
  );
}

/** Tests set this to take the pre-6.8 path (one mount(2) call) on a newer kernel too. */
const forceLegacyMount = (): boolean => process.env.TSRUN_TEST_OVERLAY_LEGACY === '1';

/**
 * The image's overlay for container `id`, whose state directory is
 * `stateDir`, as a detached mount: its fd, which the caller passes to the
 * container's init and then closes.  On failure nothing is left but what
 * release() removes, and release() has been called.
 */
export function openImageRootfs(stateDir: string, id: string, image: ImageSource): number {
  const store = new ImageStore(image.store);
  if (!fs.existsSync(store.root))
    throw new TsrunError(`annotations.${STORE_ANNOTATION}: no image store at ${store.root}`);
  // crypto loads only here: create is a hot path.
  const intent: Intent = { store: store.root, key: (require('crypto') as typeof import('crypto')).randomUUID() };
  writeIntent(stateDir, intent);
  try {
    return store.withLock('shared', () => {
      const record = Object.values(store.images()).find((img) => img.config === image.id);
      if (!record) throw new TsrunError(`image ${image.ref} (${image.id}) is no longer in the store ${store.root}`);
      const missing = record.layers.find((d) => !store.hasLayer(d));
      if (missing) throw new TsrunError(`image ${image.ref}: layer ${missing} is missing from the store ${store.root}`);
      const dir = store.useDir(intent.key);
      fs.mkdirSync(dir, { mode: 0o700 });
      // Absolute: gc, from any directory, tells a live container by this path.
      const use: ContainerUse = { stateDir: path.resolve(stateDir), id, image: image.id, layers: record.layers };
      fs.writeFileSync(path.join(dir, 'use.json'), JSON.stringify(use), { mode: 0o600 });
      const what = `image rootfs of ${image.ref}`;
      // A user's overlay is made in its store namespace (user-store.ts).
      if (process.geteuid?.() !== 0)
        return (require('./store-namespace') as typeof import('./store-namespace')).overlayFromStoreNamespace(
          store.root,
          intent.key,
          record.layers,
          what,
        );
      return overlayOfLayers(store, record.layers, dir, sourceOf(intent.key), what);
    });
  } catch (err) {
    releaseImageRootfs(stateDir);
    if (err instanceof TsrunError) throw err;
    throw new TsrunError(describeFsError(err, `image rootfs of ${image.ref}`));
  }
}

/**
 * The overlay of `layers` (diffIDs, lowest first) as a detached mount, its
 * upper, work and staging directories made in `dir`: its fd.  `what`
 * names it in an error.
 */
export function overlayOfLayers(
  store: ImageStore,
  layers: string[],
  dir: string,
  source: string,
  what: string,
): number {
  const lowers = layers.map((d) => store.layerPath(d)).reverse(); // overlayfs lists the topmost first
  const upper = path.join(dir, 'upper');
  const work = path.join(dir, 'work');
  const staging = path.join(dir, 'staging');
  fs.mkdirSync(upper);
  fs.mkdirSync(work, { mode: 0o700 });
  fs.mkdirSync(staging, { mode: 0o700 });
  // The upper's root is the merged root's: give it the image's own mode and owner.
  const top = fs.statSync(lowers[0]);
  fs.chmodSync(upper, top.mode & 0o7777);
  fs.chownSync(upper, top.uid, top.gid);
  try {
    // In a user's store namespace overlayfs keeps its attributes in user.overlay.* (user-store.ts).
    return native.overlayOpen(source, lowers, upper, work, staging, forceLegacyMount(), inStoreNamespace());
  } catch (err) {
    throw new TsrunError(`${what}: ${(err as Error).message}`);
  }
}

function writeIntent(stateDir: string, intent: Intent): void {
  const file = path.join(stateDir, INTENT_FILE);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(intent), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * Let go of the image rootfs of the container whose state directory is
 * `stateDir`, if it has one: its upper and work dirs go once no mount
 * namespace holds its overlay (otherwise gc takes them later).  Call once
 * the container's processes are gone.  Safe to call again, and at any
 * point a create may have died.
 */
export function releaseImageRootfs(stateDir: string): void {
  let intent: Intent;
  try {
    intent = JSON.parse(fs.readFileSync(path.join(stateDir, INTENT_FILE), 'utf8')) as Intent;
  } catch {
    return; // no image rootfs (or the intent never got written: nothing was made)
  }
  releaseUse(new ImageStore(intent.store), intent.key);
  fs.rmSync(path.join(stateDir, INTENT_FILE), { force: true });
}
