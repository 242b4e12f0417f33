/**
 * The image store: one directory, default /var/lib/tsrun.
 *
 *   <store>/blobs/sha256/<hex>   image configs and manifests, verified
 *   <store>/layers/<hex>/        one unpacked layer per diffID, made once
 *   <store>/images.json          reference -> { config, manifest, layers }
 *   <store>/tmp/                 imports in progress (unpacked, then renamed)
 *   <store>/lock                 flock: one writer of images.json at a time
 *
 * A layer directory appears only complete (rename from tmp/ after its
 * diffID checked out), so two imports of the same layer never see half of
 * one: the second rename finds the first's and drops its own copy.
 */
import * as fs from 'fs';
import * as path from 'path';
import { TsrunError } from '../errors';
import { native } from '../native';

export const DEFAULT_STORE = '/var/lib/tsrun';

export interface ImageRecord {
  /** sha256:... of the image config blob. */
  config: string;
  /** sha256:... of the manifest blob, when the input had one (OCI); docker-archive has none. */
  manifest?: string;
  /** The layers' diffIDs, lowest first. */
  layers: string[];
  imported: string;
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

/** "busybox" means "busybox:latest", as engines read references. */
export function normalizeRef(ref: string): string {
  if (!ref || /\s/.test(ref)) throw new TsrunError(`image reference "${ref}" is not valid`);
  const lastSlash = ref.lastIndexOf('/');
  return ref.includes('@') || ref.slice(lastSlash + 1).includes(':') ? ref : `${ref}:latest`;
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
   * Hold the store's lock while `fn` runs (imports, rm, gc).  Only an
   * import makes a missing store, and it takes the store away again if
   * it made it and then failed: a bad first import leaves nothing.
   */
  async locked<T>(fn: () => Promise<T> | T, opts: { create?: boolean } = {}): Promise<T> {
    const made = !fs.existsSync(this.root);
    if (made && !opts.create) throw new TsrunError(`no image store at ${this.root}`);
    for (const sub of ['blobs/sha256', 'layers', 'tmp']) fs.mkdirSync(path.join(this.root, sub), { recursive: true, mode: 0o700 });
    const fd = fs.openSync(path.join(this.root, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      native.flock(fd, true, true);
      return await fn();
    } catch (err) {
      // Still under the lock: nobody has put anything in the new store but us.
      if (made && !fs.existsSync(this.imagesFile)) fs.rmSync(this.root, { recursive: true, force: true });
      throw err;
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
      fs.rmSync(tmpDir, { recursive: true, force: true });
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

  /** Replace images.json whole (call under locked()). */
  saveImages(images: Record<string, ImageRecord>): void {
    const tmp = `${this.imagesFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(images, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, this.imagesFile);
  }

  /** An image by reference ("name[:tag]") or by config digest (or a unique prefix of its hex). */
  resolve(ref: string): { ref: string; image: ImageRecord } {
    const images = this.images();
    const byName = images[normalizeRef(ref)];
    if (byName) return { ref: normalizeRef(ref), image: byName };
    const hex = ref.replace(/^sha256:/, '');
    if (/^[0-9a-f]{6,64}$/.test(hex)) {
      const hits = Object.entries(images).filter(([, img]) => img.config.slice(7).startsWith(hex));
      const configs = new Set(hits.map(([, img]) => img.config));
      if (configs.size === 1) return { ref: hits[0][0], image: hits[0][1] };
      if (configs.size > 1) throw new TsrunError(`image "${ref}" is ambiguous`);
    }
    throw new TsrunError(`image "${ref}" is not in the store ${this.root}`);
  }

  /**
   * Remove layers, blobs and leftovers no image uses.  `inUse` adds
   * diffIDs held by something else (containers).  Returns what was removed.
   */
  gc(inUse: Set<string> = new Set()): string[] {
    const images = Object.values(this.images());
    const layers = new Set([...inUse, ...images.flatMap((img) => img.layers)].map((d) => hexOf(d, 'layer')));
    const blobs = new Set(images.flatMap((img) => [img.config, ...(img.manifest ? [img.manifest] : [])]).map((d) => hexOf(d, 'blob')));
    const removed: string[] = [];
    for (const hex of fs.readdirSync(path.join(this.root, 'layers'))) {
      if (layers.has(hex)) continue;
      fs.rmSync(path.join(this.root, 'layers', hex), { recursive: true, force: true });
      removed.push(`layer sha256:${hex}`);
    }
    for (const hex of fs.readdirSync(path.join(this.root, 'blobs', 'sha256'))) {
      if (blobs.has(hex)) continue;
      fs.rmSync(path.join(this.root, 'blobs', 'sha256', hex), { force: true });
      removed.push(`blob sha256:${hex}`);
    }
    // Imports that died half-way (we hold the lock: none is running).
    for (const name of fs.readdirSync(path.join(this.root, 'tmp'))) fs.rmSync(path.join(this.root, 'tmp', name), { recursive: true, force: true });
    return removed;
  }
}
