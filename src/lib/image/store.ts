/**
 * The image store: one directory, default /var/lib/tsrun (a user's:
 * $XDG_DATA_HOME/tsrun, see user-store.ts).
 *
 *   <store>/blobs/sha256/<hex>     image configs and manifests, verified
 *   <store>/layers/<hex>/          one unpacked layer per diffID, made once
 *   <store>/images.json            reference -> { config, manifest, layers }
 *   <store>/containers/<key>/      one container's rootfs: use.json (who uses
 *                                  which layers), upper/ and work/ of its overlay,
 *                                  staging/ (see native/overlay.c)
 *   <store>/tmp/                   imports in progress (unpacked, then renamed)
 *   <store>/lock                   flock: shared by imports and by containers
 *                                  taking layers, exclusive for rm and gc
 *   <store>/images.lock            flock: one writer of images.json at a time
 *   <store>/idmap.json             a user's store only: the id map its files
 *                                  were written with (user-store.ts)
 *
 * A layer directory appears only complete (rename from tmp/ after its
 * diffID checked out), so two imports of the same layer never see half of
 * one: the second rename finds the first's and drops its own copy.  (One
 * thing in a layer directory depends on the layers below it: a directory
 * the layer needs but does not list takes their attributes, see unpack.ts.
 * Layers from docker and podman list every such directory; for those that
 * do not, the image first imported with the layer decides.)  Imports
 * run side by side under the shared lock; rm and gc wait for them, so gc
 * never takes a layer an import is about to name, nor one a container is
 * about to mount.
 *
 * The subdirectories are 0700 whatever the store's own mode: layers hold
 * the images' setuid binaries and device nodes, and a container's upper
 * whatever it wrote, and no other local user may reach them.  Every tree
 * here is removed with removeTree (no symlink followed, whatever a
 * container or an image put there).
 */
import fs = require('fs');
import { parseMountinfo } from '../mountinfo';
import path = require('path');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { native } from '../native';
import { removeTree } from '../remove-tree';
import { formatReference, normalizeRef, parseReference, type Reference, repositoryOf } from './reference';
import { defaultUserStore, inStoreNamespace, recordStoreMaps } from './user-store';

export const DEFAULT_STORE = '/var/lib/tsrun';

/** The store when none is named: root's, or the user's own (user-store.ts). */
export function defaultStoreDir(): string {
  return process.geteuid?.() === 0 ? DEFAULT_STORE : defaultUserStore();
}

/** <store>/containers/<key>/use.json: a container's claim on an image's layers. */
export interface ContainerUse {
  /** The container's state directory (<root>/<id>): the use lives as long as it does. */
  stateDir: string;
  id: string;
  /** The image's config digest, and its layers' diffIDs (lowest first). */
  image: string;
  layers: string[];
}

export interface ImageRecord {
  /** sha256:... of the image config blob. */
  config: string;
  /** sha256:... of the manifest blob, when the input had one (OCI); docker-archive has none. */
  manifest?: string;
  /** The layers' diffIDs, lowest first. */
  layers: string[];
  imported: string;
  /** Pulled through an image index (a multi-platform image): its digest, the name a registry gives the image. */
  index?: string;
  /** Pulled: the layers as the registry serves them (compressed), kept in blobs/ for a push. */
  layerBlobs?: Array<{ digest: string; size: number; mediaType: string }>;
  /** Pulled: the repository it came from ("127.0.0.1:5000/busybox"), which a push to the same registry can mount from. */
  source?: string;
}

/** The digests an image answers to: its index's (pulled), its manifest's, its config's. */
export function digestsOf(image: Pick<ImageRecord, 'index' | 'manifest' | 'config'>): string[] {
  return [image.index, image.manifest, image.config].filter((d): d is string => d !== undefined);
}

const DIGEST = /^sha256:([0-9a-f]{64})$/;

export function hexOf(digest: string, what: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new TsrunError(`${what}: "${digest}" is not a sha256 digest`);
  return m[1];
}

/** crypto, loaded when a digest is needed rather than at every CLI start. */
const crypto = (): typeof import('crypto') => require('crypto') as typeof import('crypto');

export function sha256(data: Buffer): string {
  return `sha256:${crypto().createHash('sha256').update(data).digest('hex')}`;
}

/** An image kept under its config digest alone: its archive or layout named it nowhere. */
export const isUnnamed = (key: string): boolean => key.startsWith('sha256:');

/** "docker.io/library/busybox" of a store name ("...:latest", "...@sha256:..."); undefined for an ID. */
export function repositoryOfKey(key: string): string | undefined {
  if (isUnnamed(key)) return undefined;
  try {
    return repositoryOf(parseReference(key));
  } catch {
    return undefined;
  }
}

/**
 * A name an image may be stored under: one whose digest, if it has one, is
 * the image's own (manifest or config); anything else would let a name pin
 * a digest the image does not have.
 */
export function checkNameFor(
  name: string,
  image: { index?: string; manifest?: string; config: string },
  what: string,
): void {
  const digest = parseReference(name).digest;
  if (digest && !digestsOf(image).includes(digest))
    throw new TsrunError(
      `${what} "${name}": ${digest} is not this image's digest (its manifest is ${image.manifest ?? 'not known: a docker-archive has none'}, its config ${image.config})`,
    );
}

export class ImageStore {
  constructor(readonly root: string) {}

  private get imagesFile(): string {
    return path.join(this.root, 'images.json');
  }

  blobPath(digest: string): string {
    return path.join(this.root, 'blobs', 'sha256', hexOf(digest, 'blob'));
  }

  layerPath(diffID: string): string {
    return path.join(this.root, 'layers', hexOf(diffID, 'layer diffID'));
  }

  hasLayer(diffID: string): boolean {
    return fs.existsSync(this.layerPath(diffID));
  }

  /** A fresh directory under tmp/ for work in progress. */
  tempDir(): string {
    const dir = path.join(this.root, 'tmp', crypto().randomUUID());
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Take the store's lock (shared or exclusive) and return its fd, for
   * unlock().  Only an import makes a missing store (`create`).
   */
  lock(mode: 'shared' | 'exclusive', opts: { create?: boolean } = {}): number {
    if (!fs.existsSync(this.root) && !opts.create) throw new TsrunError(`no image store at ${this.root}`);
    for (const sub of ['blobs/sha256', 'layers', 'containers', 'tmp'])
      fs.mkdirSync(path.join(this.root, sub), { recursive: true, mode: 0o700 });
    for (const sub of PRIVATE_DIRS) {
      const dir = path.join(this.root, sub);
      if ((fs.statSync(dir).mode & 0o077) !== 0) fs.chmodSync(dir, 0o700); // made by someone else, or by hand
    }
    if (opts.create && inStoreNamespace()) recordStoreMaps(this.root);
    const fd = fs.openSync(path.join(this.root, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    native.flock(fd, mode === 'exclusive', true);
    return fd;
  }

  /**
   * Remove trees of the store (layers, a container's upper and work, tmp/)
   * without following a symlink.  A user's go through its store namespace
   * (user-store.ts): their directories may belong to subordinate ids.
   */
  removeTrees(trees: string[]): void {
    if (process.geteuid?.() !== 0) {
      (require('./store-namespace') as typeof import('./store-namespace')).removeInStoreNamespace(this.root, trees);
      return;
    }
    for (const tree of trees) removeTree(tree);
  }

  unlock(fd: number): void {
    fs.closeSync(fd); // closing drops the flock
  }

  /** Run `fn` under the lock; for rm and gc (exclusive) and whoever reads uses. */
  withLock<T>(mode: 'shared' | 'exclusive', fn: () => T): T {
    const fd = this.lock(mode);
    try {
      return fn();
    } finally {
      this.unlock(fd);
    }
  }

  /**
   * An import: the shared lock while `fn` runs.  A store this import made
   * is taken away again if the import fails and nobody else is in it, so a
   * bad first import leaves nothing.
   */
  async importing<T>(fn: () => Promise<T>): Promise<T> {
    refuseOverlayfs(this.root);
    const made = !fs.existsSync(this.root);
    const fd = this.lock('shared', { create: true });
    try {
      return await fn();
    } catch (err) {
      // Upgrading to exclusive without waiting succeeds only if no other import is running.
      if (made && native.flock(fd, true, false) && !fs.existsSync(this.imagesFile)) removeTree(this.root);
      throw err;
    } finally {
      this.unlock(fd);
    }
  }

  /** Read, change and write images.json as one step, against other imports. */
  updateImages(change: (images: Record<string, ImageRecord>) => void): void {
    const fd = fs.openSync(path.join(this.root, 'images.lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      native.flock(fd, true, true);
      const images = this.images();
      change(images);
      this.saveImages(images);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Store a blob whose digest is already verified. */
  putBlob(digest: string, data: Buffer): void {
    const file = this.blobPath(digest);
    if (fs.existsSync(file)) return;
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  readBlob(digest: string): Buffer {
    return fs.readFileSync(this.blobPath(digest));
  }

  /** Move an unpacked, verified layer into place; a copy already there wins. */
  commitLayer(tmpDir: string, diffID: string): void {
    try {
      fs.renameSync(tmpDir, this.layerPath(diffID));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
      removeTree(tmpDir);
    }
  }

  images(): Record<string, ImageRecord> {
    try {
      return JSON.parse(fs.readFileSync(this.imagesFile, 'utf8')) as Record<string, ImageRecord>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new TsrunError(`${this.imagesFile}: ${(err as Error).message}`);
    }
  }

  /** Replace images.json whole (through updateImages). */
  private saveImages(images: Record<string, ImageRecord>): void {
    const tmp = `${this.imagesFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(images, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, this.imagesFile);
  }

  /**
   * An image by reference, as docker and podman resolve one (reference.ts):
   * `busybox`, `library/busybox` and `docker.io/library/busybox:latest`
   * are one name; a short name not under docker.io is looked for under
   * `localhost/` too, where podman names the images it builds;
   * `NAME@sha256:...` is the image of that repository whose manifest (or
   * config) has that digest.  Or by image ID: its config digest, or a
   * unique prefix of its hex (6 or more digits).
   */
  resolve(text: string): { ref: string; image: ImageRecord } {
    const images = this.images();
    let parsed: Reference | undefined;
    let refError: unknown;
    try {
      parsed = parseReference(text);
    } catch (err) {
      refError = err;
    }
    if (parsed) {
      const candidates = [
        parsed,
        ...(parsed.domainGiven
          ? []
          : [{ ...parsed, domain: 'localhost', path: parsed.path.replace(/^library\//, '') }]),
      ];
      for (const ref of candidates) {
        if (ref.digest) {
          // The digest is checked against the image itself, never against a
          // name's text: an archive may call anything "alpine@sha256:...".
          const repository = repositoryOf(ref);
          const hit = Object.entries(images).find(
            ([key, img]) => digestsOf(img).includes(ref.digest!) && repositoryOfKey(key) === repository,
          );
          if (hit) return { ref: hit[0], image: hit[1] };
          continue;
        }
        const key = formatReference(ref);
        if (images[key]) return { ref: key, image: images[key] };
      }
    }
    const hex = text.replace(/^sha256:/, '');
    if (/^[0-9a-f]{6,64}$/.test(hex)) {
      const hits = Object.entries(images).filter(([, img]) => img.config.slice(7).startsWith(hex));
      const configs = new Set(hits.map(([, img]) => img.config));
      if (configs.size === 1) return { ref: hits[0][0], image: hits[0][1] };
      if (configs.size > 1)
        throw new TsrunError(`image "${text}" is ambiguous: ${configs.size} images have IDs starting so`);
    } else if (refError) {
      throw refError;
    }
    throw new TsrunError(`image "${text}" is not in the store ${this.root}`);
  }

  /** A container's rootfs directory in the store (upper/, work/, use.json). */
  useDir(key: string): string {
    return path.join(this.root, 'containers', key);
  }

  /** Every container use on record, live or not. */
  uses(): Array<{ key: string; use: ContainerUse }> {
    let keys: string[];
    try {
      keys = fs.readdirSync(path.join(this.root, 'containers'));
    } catch {
      return [];
    }
    const out: Array<{ key: string; use: ContainerUse }> = [];
    for (const key of keys) {
      try {
        out.push({
          key,
          use: JSON.parse(fs.readFileSync(path.join(this.useDir(key), 'use.json'), 'utf8')) as ContainerUse,
        });
      } catch {
        out.push({ key, use: { stateDir: '', id: '', image: '', layers: [] } }); // half made: no use.json yet
      }
    }
    return out;
  }

  /**
   * Uses whose container still exists.  A use outlives its container only
   * when tsrun died between the two (or /run was wiped, as by a reboot);
   * the container's state directory is what tells.
   */
  liveUses(uses = this.uses()): Array<{ key: string; use: ContainerUse }> {
    return uses.filter(({ use }) => isLive(use));
  }

  /**
   * Remove layers, blobs and leftovers no image and no container uses
   * (call under the exclusive lock).  Returns what was removed.
   */
  gc(): string[] {
    const images = Object.values(this.images());
    const removed: string[] = [];
    // A use outlives its container's state, but not while an overlay of its
    // layers is still mounted somewhere: those stay, and so do their layers.
    const kept: ContainerUse[] = [];
    const trees: string[] = [];
    for (const { key, use } of this.uses()) {
      if (isLive(use) || !releasable(this, key)) {
        kept.push(use);
        continue;
      }
      trees.push(this.useDir(key));
      removed.push(`container rootfs ${key}${use.id ? ` (${use.id})` : ''}`);
    }
    const layers = new Set(
      [...kept.flatMap((u) => u.layers), ...images.flatMap((img) => img.layers)].map((d) => hexOf(d, 'layer')),
    );
    const blobs = new Set(
      images
        .flatMap((img) => [...digestsOf(img), ...(img.layerBlobs ?? []).map((b) => b.digest)])
        .map((d) => hexOf(d, 'blob')),
    );
    for (const hex of fs.readdirSync(path.join(this.root, 'layers'))) {
      if (layers.has(hex)) continue;
      trees.push(path.join(this.root, 'layers', hex));
      removed.push(`layer sha256:${hex}`);
    }
    for (const hex of fs.readdirSync(path.join(this.root, 'blobs', 'sha256'))) {
      if (blobs.has(hex)) continue;
      fs.rmSync(path.join(this.root, 'blobs', 'sha256', hex), { force: true });
      removed.push(`blob sha256:${hex}`);
    }
    // Imports that died half-way (we hold the lock: none is running).
    for (const name of fs.readdirSync(path.join(this.root, 'tmp'))) trees.push(path.join(this.root, 'tmp', name));
    this.removeTrees(trees);
    return removed;
  }

  /** image tag: `target` (normalised) names the image `source` finds, as docker tag does. */
  tag(source: string, target: string): string {
    const name = normalizeRef(target);
    return this.withLock('shared', () => {
      const { image } = this.resolve(source);
      checkNameFor(name, image, 'image tag');
      this.updateImages((current) => {
        current[name] = image;
        delete current[image.config]; // named now: no longer kept under its ID alone
      });
      return name;
    });
  }

  /** image prune: images kept under their ID alone (docker's dangling ones) that no live container uses, then gc. */
  prune(): { images: string[]; removed: string[] } {
    return this.withLock('exclusive', () => {
      const used = new Set(this.liveUses().map(({ use }) => use.image));
      const dangling = Object.keys(this.images()).filter((key) => isUnnamed(key) && !used.has(key));
      this.updateImages((current) => {
        for (const key of dangling) delete current[key];
      });
      return { images: dangling, removed: this.gc() };
    });
  }

  /**
   * image rm: drop references; an image a live container uses keeps its
   * last reference (an error names the container) unless `force` (rm -f,
   * as docker rmi -f: the name goes, the container keeps its layers until
   * it is deleted).  Then gc.
   */
  removeImages(refs: string[], force = false): string[] {
    return this.withLock('exclusive', () => {
      const images = this.images();
      const names = new Set(refs.map((ref) => this.resolve(ref).ref));
      const live = this.liveUses();
      for (const name of names) {
        const config = images[name].config;
        const kept = Object.entries(images).some(([r, img]) => !names.has(r) && img.config === config);
        const users = live
          .filter(({ use }) => use.image === config)
          .map(({ use }) => `"${use.id}"`)
          .sort();
        if (!kept && users.length && !force)
          throw new TsrunError(
            `image "${name}" is in use by container${users.length > 1 ? 's' : ''} ${users.join(', ')}; delete ${users.length > 1 ? 'them' : 'it'} first, or give -f`,
          );
      }
      this.updateImages((current) => {
        for (const name of names) delete current[name];
      });
      return this.gc();
    });
  }
}

/** statfs(2)'s f_type of overlayfs. */
const OVERLAYFS_MAGIC = 0x794c7630;

/**
 * A store on overlayfs cannot work: overlayfs refuses to create a whiteout
 * (the 0/0 device a layer's deletions become) on itself, and takes no
 * overlayfs upper dir.  Said before an import makes anything (a container
 * image's own root, or a VM's, is often one).
 */
function refuseOverlayfs(root: string): void {
  let dir = path.resolve(root);
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  let type: number;
  try {
    type = Number(fs.statfsSync(dir).type);
  } catch {
    return; // cannot tell: the import says what fails
  }
  if (type === OVERLAYFS_MAGIC)
    throw new TsrunError(
      `image store ${root}: ${dir} is on overlayfs, which cannot hold a layer's whiteouts nor a container's upper dir; put the store on another filesystem (--store, $TSRUN_STORE${process.geteuid?.() === 0 && !inStoreNamespace() ? '' : ', $XDG_DATA_HOME'})`,
    );
}

/** The store's directories no other local user may reach (the root itself may be shared). */
const PRIVATE_DIRS = ['blobs', 'layers', 'containers', 'tmp'];

/** A use whose container's state directory is still there. */
const isLive = (use: ContainerUse): boolean => use.stateDir !== '' && fs.existsSync(use.stateDir);

/**
 * Remove a container's upper and work dirs, unless its overlay is still
 * mounted in some mount namespace: a process there could still be writing
 * the upper (never remove a container's files while any of it runs), and
 * gc takes it once nothing holds it.  True if removed.
 */
export function releaseUse(store: ImageStore, key: string): boolean {
  if (!releasable(store, key)) return false;
  store.removeTrees([store.useDir(key)]);
  return true;
}

/** Whether no mount namespace holds the overlay of container rootfs `key` any more (a warning says which does). */
function releasable(store: ImageStore, key: string): boolean {
  const holder = overlayHolder(sourceOf(key));
  if (holder === undefined) return true;
  warn(
    `container rootfs ${store.useDir(key)}: its overlay is still mounted in the mount namespace of process ${holder}; left in place for image gc`,
  );
  return false;
}

/** The mount source that names a container's overlay in mountinfo. */
export function sourceOf(key: string): string {
  return `tsrun-rootfs-${key}`;
}

/**
 * A process whose mount namespace holds the overlay named `source`, or
 * undefined.  The overlay is mounted in no namespace but a container's
 * (and those copied from it), so this looks at one process of every mount
 * namespace there is.
 */
export function overlayHolder(source: string): number | undefined {
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return undefined;
  }
  const seen = new Set<string>();
  for (const pid of pids) {
    let ns: string;
    try {
      ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch {
      continue; // gone, or a kernel thread
    }
    if (seen.has(ns)) continue;
    seen.add(ns);
    try {
      const mounts = parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
      if (mounts.some((m) => m.fstype === 'overlay' && m.source === source)) return Number(pid);
    } catch {
      seen.delete(ns); // gone meanwhile: read another process of that namespace
    }
  }
  return undefined;
}
