/**
 * `tsrun image import`: a docker-archive (docker/podman save), an OCI
 * image layout directory, or an OCI archive (a tar of a layout) into the
 * store.  Every blob is checked against its digest, every layer against
 * the diffID its image config names; a layer already in the store is not
 * unpacked again.  An archive is first unpacked with the layer writer
 * (contained like any layer), and files in it are opened beneath it, so
 * its symlinks cannot point the import at a host file.
 */
import { createHash } from 'crypto';
import fs = require('fs');
import path = require('path');
import { PassThrough } from 'stream';
import { TsrunError } from '../errors';
import { native } from '../native';
import { removeTree } from '../remove-tree';
import { checkNameFor, hexOf, type ImageRecord, type ImageStore, sha256 } from './store';
import { normalizeRef } from './reference';
import { warn } from '../log';
import { MEDIA } from './media-types';
import { mergedDirAttributes } from './merged';
import { formatPlatform, hostPlatform, platformMatches } from './platform';
import { unpackLayer } from './unpack';
import { inStoreNamespace, mappedIdLimits } from './user-store';

/** One image found in the input: where its parts are, and what they must hash to. */
interface Candidate {
  refs: string[];
  /** docker-archive RepoTags are names whatever their shape; an OCI ref name may be a tag alone. */
  refsAreNames?: boolean;
  config: { file: string; digest?: string };
  manifest?: { data: Buffer; digest: string };
  layers: Array<{ file: string; digest?: string; size?: number; mediaType?: string }>;
}

interface Source {
  rootFd: number;
  read(file: string, what: string): Buffer;
  size(file: string): number;
}

/** How far an import has got, for a progress display. */
export interface ImportProgress {
  /** "archive": reading the input tar; "layers": unpacking layers. */
  phase: 'archive' | 'layers';
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
}

export type ProgressListener = (p: ImportProgress) => void;

function openSource(dir: string): Source {
  const rootFd = native.layerOpenRoot(dir);
  return {
    rootFd,
    read(file, what) {
      let fd: number;
      try {
        fd = native.layerOpenFile(rootFd, file);
      } catch (err) {
        throw new TsrunError(`${what} ${file}: ${(err as Error).message.replace(/^[^:]*: /, '')}`);
      }
      try {
        return fs.readFileSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    size(file) {
      let fd: number;
      try {
        fd = native.layerOpenFile(rootFd, file);
      } catch {
        return 0; // reported by the read that follows
      }
      try {
        return fs.fstatSync(fd).size;
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- image JSON, checked field by field by each reader
function parseJson(data: Buffer, what: string): any {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new TsrunError(`${what}: invalid JSON: ${(err as Error).message}`);
  }
}

function checkDigest(data: Buffer, digest: string | undefined, what: string): string {
  const actual = sha256(data);
  if (digest && actual !== digest)
    throw new TsrunError(`${what}: digest mismatch: expected ${digest}, content is ${actual}`);
  return actual;
}

const blobFile = (digest: string): string => `blobs/sha256/${hexOf(digest, 'descriptor digest')}`;

/** docker save: manifest.json lists each image's config and layer files. */
function dockerCandidates(src: Source): Candidate[] {
  const manifest = parseJson(src.read('manifest.json', 'docker-archive'), 'manifest.json');
  if (!Array.isArray(manifest)) throw new TsrunError('manifest.json: expected an array of images');
  return manifest.map((item: { Config?: unknown; RepoTags?: unknown; Layers?: unknown }, i: number) => {
    if (
      typeof item?.Config !== 'string' ||
      !Array.isArray(item.Layers) ||
      !item.Layers.every((l) => typeof l === 'string')
    )
      throw new TsrunError(`manifest.json[${i}]: needs Config and Layers`);
    // The config's file name is its digest ("<hex>.json" or "blobs/sha256/<hex>").
    const named = /(?:^|\/)([0-9a-f]{64})(?:\.json)?$/.exec(item.Config);
    const fromLayout = (file: string): string | undefined => {
      const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(file);
      return m ? `sha256:${m[1]}` : undefined;
    };
    return {
      refs: Array.isArray(item.RepoTags) ? item.RepoTags.filter((r): r is string => typeof r === 'string') : [],
      refsAreNames: true,
      config: { file: item.Config, digest: named ? `sha256:${named[1]}` : undefined },
      layers: (item.Layers as string[]).map((file) => ({ file, digest: fromLayout(file) })),
    };
  });
}

/**
 * How deep image indexes may nest, index.json counted as the first.  Real
 * layouts have index.json -> manifest, or index.json -> a multi-platform
 * index -> manifest, and sometimes one index more; 8 leaves room for any
 * tool's wrapping while a chain built to exhaust the walk stops early.
 */
const MAX_INDEX_DEPTH = 8;
/**
 * How many descriptors the walk may read in all, index.json's included
 * (repeats count: each is read).  A multi-platform index lists a few
 * dozen manifests and attestations, a layout of many tags a few hundred;
 * 4096 is far beyond those, and few enough that reading them is quick.
 */
const MAX_DESCRIPTORS = 4096;

const REF_ANNOTATION = 'org.opencontainers.image.ref.name';
/** The full name containerd's export writes beside a ref.name that is only a tag. */
const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';

/**
 * An OCI layout: index.json -> manifests (through nested indexes) -> config
 * and layers.  Three small indexes, each listing the next 64 times, make
 * 64^3 paths to one manifest, so the walk keeps memory: an index is walked
 * once for each ref name it is reached under (the name applies to every
 * manifest below it), a manifest is read once, and one reached by several
 * paths is one image, with each of its names once.
 */
function ociCandidates(src: Source): Candidate[] {
  const byManifest = new Map<string, Candidate>();
  /** "<digest> <ref>" of every index walked: the same index under the same name adds nothing. */
  const walked = new Set<string>();
  let descriptors = 0;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an index as parsed, checked below
  const visit = (index: any, what: string, depth: number, inheritedRef?: string): void => {
    if (depth > MAX_INDEX_DEPTH) throw new TsrunError(`${what}: image indexes nested deeper than ${MAX_INDEX_DEPTH}`);
    const manifests: unknown = index?.manifests ?? [];
    if (!Array.isArray(manifests)) throw new TsrunError(`${what}: manifests must be an array`);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- descriptors as parsed, checked below
    for (const [i, desc] of (manifests as Array<Record<string, any>>).entries()) {
      const at = `${what}.manifests[${i}]`;
      if (++descriptors > MAX_DESCRIPTORS)
        throw new TsrunError(`${at}: more than ${MAX_DESCRIPTORS} descriptors in the layout's image indexes`);
      if (typeof desc?.digest !== 'string') throw new TsrunError(`${at}: no digest`);
      // Another platform's image (an index's arm64 entry on amd64, an attestation's "unknown/unknown").
      const platform = desc.platform;
      if (
        platform &&
        (platform.os !== 'linux' || (platform.architecture !== undefined && !platformMatches(platform, hostPlatform())))
      )
        continue;
      const ref: string | undefined =
        desc.annotations?.[CONTAINERD_NAME_ANNOTATION] ?? desc.annotations?.[REF_ANNOTATION] ?? inheritedRef;
      const seen = byManifest.get(desc.digest);
      if (seen) {
        if (ref && !seen.refs.includes(ref)) seen.refs.push(ref);
        continue;
      }
      const walkKey = `${desc.digest} ${ref ?? ''}`;
      if (walked.has(walkKey)) continue;
      const data = src.read(blobFile(desc.digest), at);
      checkDigest(data, desc.digest, at);
      const parsed = parseJson(data, at);
      if (desc.mediaType === MEDIA.ociIndex || parsed?.manifests) {
        walked.add(walkKey);
        visit(parsed, `index ${desc.digest}`, depth + 1, ref);
        continue;
      }
      const manifest = parsed;
      if (typeof manifest?.config?.digest !== 'string' || !Array.isArray(manifest.layers))
        throw new TsrunError(`manifest ${desc.digest}: needs config and layers`);
      byManifest.set(desc.digest, {
        refs: ref ? [ref] : [],
        manifest: { data, digest: desc.digest },
        config: { file: blobFile(manifest.config.digest), digest: manifest.config.digest },
        layers: manifest.layers.map((l: { digest: string; size?: number; mediaType?: string }) => {
          if (typeof l?.digest !== 'string') throw new TsrunError(`manifest ${desc.digest}: a layer without a digest`);
          return { file: blobFile(l.digest), digest: l.digest, size: l.size, mediaType: l.mediaType };
        }),
      });
    }
  };
  visit(parseJson(src.read('index.json', 'OCI layout'), 'index.json'), 'index.json', 1);
  return [...byManifest.values()];
}

/**
 * Unpack one layer into the store unless it is there; checks blob digest
 * and diffID.  The blob itself is kept in blobs/ too (as pull keeps what it
 * downloads), for a push.
 */
async function importLayer(
  store: ImageStore,
  src: Source,
  layer: Candidate['layers'][number],
  diffID: string,
  below: string[],
  label: string,
  onBytes: (n: number) => void,
): Promise<{ digest: string; size: number; gzip: boolean } | undefined> {
  if (store.hasLayer(diffID)) return undefined;
  const fd = native.layerOpenFile(src.rootFd, layer.file);
  const raw = fs.createReadStream('', { fd, highWaterMark: 1 << 20 });
  const blobHash = createHash('sha256');
  let size = 0;
  const counted = new PassThrough();
  const tmpBlob = `${store.blobPath(diffID)}.${process.pid}.import`;
  const blobFd = fs.openSync(tmpBlob, 'w', 0o600);
  let gzip: boolean | undefined;
  raw.on('data', (chunk) => {
    gzip ??= (chunk as Buffer)[0] === 0x1f && (chunk as Buffer)[1] === 0x8b;
    blobHash.update(chunk as Buffer);
    fs.writeSync(blobFd, chunk as Buffer);
    size += (chunk as Buffer).length;
    onBytes((chunk as Buffer).length);
  });
  raw.on('error', (err) => counted.destroy(err));
  raw.pipe(counted);
  const tmp = store.tempDir();
  // A layer's root is its "./" entry when it has one; otherwise what a
  // container's / shows must still be 0755, not tmp's private 0700.
  fs.chmodSync(tmp, 0o755);
  try {
    const lowerDirs = below.map((d) => store.layerPath(d));
    const { diffID: actual } = await unpackLayer(
      counted,
      tmp,
      label,
      (rel) => mergedDirAttributes(lowerDirs, rel),
      inStoreNamespace() ? mappedIdLimits() : undefined,
    );
    const blobDigest = `sha256:${blobHash.digest('hex')}`;
    if (layer.digest && blobDigest !== layer.digest)
      throw new TsrunError(`${label}: digest mismatch: expected ${layer.digest}, content is ${blobDigest}`);
    if (layer.size !== undefined && layer.size !== size)
      throw new TsrunError(`${label}: size mismatch: expected ${layer.size} bytes, read ${size}`);
    if (actual !== diffID)
      throw new TsrunError(`${label}: diffID mismatch: the image config says ${diffID}, the content is ${actual}`);
    store.commitLayer(tmp, diffID);
    fs.closeSync(blobFd);
    if (fs.existsSync(store.blobPath(blobDigest))) fs.rmSync(tmpBlob);
    else fs.renameSync(tmpBlob, store.blobPath(blobDigest));
    return { digest: blobDigest, size, gzip: gzip ?? false };
  } catch (err) {
    raw.destroy();
    removeTree(tmp);
    try {
      fs.closeSync(blobFd);
    } catch {
      // closed before the rename failed
    }
    fs.rmSync(tmpBlob, { force: true });
    throw err;
  }
}

export interface ImportResult {
  refs: string[];
  layersUnpacked: number;
  layersShared: number;
}

/**
 * Import every image in `input` (file or directory).  `tags` name the
 * image too (an input holding several images takes no --tag).  The store
 * is unchanged when anything fails, but for layers already verified.
 */
export async function importImage(
  store: ImageStore,
  input: string,
  tags: string[] = [],
  onProgress: ProgressListener = () => {},
): Promise<ImportResult> {
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch (err) {
    throw new TsrunError(
      `${input}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
    );
  }
  return store.importing(async () => {
    let dir = input;
    let unpacked: string | undefined;
    if (!st.isDirectory()) {
      unpacked = dir = store.tempDir();
      const archive = fs.createReadStream(input);
      const progress: ImportProgress = {
        phase: 'archive',
        bytesDone: 0,
        bytesTotal: st.size,
        layersDone: 0,
        layersTotal: 0,
      };
      archive.on('data', (chunk) => {
        progress.bytesDone += (chunk as Buffer).length;
        onProgress(progress);
      });
      await unpackLayer(archive, dir, `archive ${input}`).catch((err) => {
        removeTree(dir);
        throw err;
      });
    }
    const src = openSource(dir);
    try {
      const isOci = fs.existsSync(path.join(dir, 'index.json'));
      const isDocker = fs.existsSync(path.join(dir, 'manifest.json'));
      if (!isOci && !isDocker)
        throw new TsrunError(`${input}: neither a docker-archive (manifest.json) nor an OCI image layout (index.json)`);
      const candidates = isDocker ? dockerCandidates(src) : ociCandidates(src);
      if (candidates.length === 0) throw new TsrunError(`${input}: no ${formatPlatform(hostPlatform())} image in it`);
      if (tags.length && candidates.length > 1)
        throw new TsrunError(`--tag: ${input} holds ${candidates.length} images; tag them after import`);
      const records: Array<[string[], ImageRecord]> = [];
      /** The blobs unpacked here, by file: what a docker-archive's layer was (plain or gzip). */
      const kept = new Map<string, { digest: string; size: number; gzip: boolean }>();
      const result: ImportResult = { refs: [], layersUnpacked: 0, layersShared: 0 };
      const allLayers = candidates.flatMap((c) => c.layers);
      const progress: ImportProgress = {
        phase: 'layers',
        bytesDone: 0,
        bytesTotal: allLayers.reduce((sum, l) => sum + src.size(l.file), 0),
        layersDone: 0,
        layersTotal: allLayers.length,
      };
      onProgress(progress);
      for (const c of candidates) {
        const configData = src.read(c.config.file, 'image config');
        const configDigest = checkDigest(configData, c.config.digest, `image config ${c.config.file}`);
        const config = parseJson(configData, `image config ${configDigest}`);
        const diffIDs: unknown = config.rootfs?.diff_ids;
        if (
          !Array.isArray(diffIDs) ||
          diffIDs.length !== c.layers.length ||
          !diffIDs.every((d) => typeof d === 'string')
        )
          throw new TsrunError(
            `image config ${configDigest}: rootfs.diff_ids must list one diffID per layer (${c.layers.length})`,
          );
        for (const [i, layer] of c.layers.entries()) {
          const before = progress.bytesDone;
          const fresh = await importLayer(
            store,
            src,
            layer,
            diffIDs[i] as string,
            diffIDs.slice(0, i) as string[],
            `layer ${i + 1} (${layer.file})`,
            (n) => {
              progress.bytesDone += n;
              onProgress(progress);
            },
          );
          if (fresh) {
            result.layersUnpacked++;
            kept.set(layer.file, fresh);
          } else result.layersShared++;
          progress.bytesDone = before + src.size(layer.file);
          progress.layersDone++;
          onProgress(progress);
        }
        store.putBlob(configDigest, configData);
        if (c.manifest) store.putBlob(c.manifest.digest, c.manifest.data);
        const record: ImageRecord = {
          config: configDigest,
          manifest: c.manifest?.digest,
          layers: diffIDs as string[],
          // The layers as the input had them: a layout's blobs, a docker-archive's plain tars (whose digest is the diffID).
          layerBlobs: c.layers.map((l, i) => {
            const blob = kept.get(l.file);
            return {
              digest: l.digest ?? blob?.digest ?? (diffIDs[i] as string),
              size: l.size ?? blob?.size ?? src.size(l.file),
              mediaType: l.mediaType ?? (blob?.gzip || (c.manifest && !blob) ? MEDIA.ociLayerGzip : MEDIA.ociLayer),
            };
          }),
          imported: new Date().toISOString(),
        };
        // An OCI layout's ref name is most often a tag alone ("2.0", as skopeo
        // and umoci write it), which names no repository: such an image is
        // kept under its ID unless --tag names it.  A full reference (with a
        // "/", ":" or "@") is a name, normalised as docker reads it.
        const named = c.refs.filter((r) => c.refsAreNames || /[/:@]/.test(r));
        const bareTags = c.refs.filter((r) => !named.includes(r));
        if (!named.length && !tags.length && bareTags.length)
          warn(
            `${input}: the layout names image ${configDigest.slice(7, 19)} only by the tag ${bareTags.map((r) => `"${r}"`).join(', ')} (${REF_ANNOTATION}), which names no repository: it is kept under its ID; give --tag NAME:TAG to name it`,
          );
        const refs = [...new Set([...named, ...tags].map(normalizeRef))];
        for (const ref of refs) checkNameFor(ref, record, `${input}: the name`);
        records.push([refs.length ? refs : [configDigest], record]);
      }
      store.updateImages((images) => {
        for (const [refs, record] of records) {
          for (const ref of refs) {
            images[ref] = record;
            result.refs.push(ref);
          }
          // Named now: it is no longer kept under its ID alone (as docker drops <none>).
          if (!refs.includes(record.config)) delete images[record.config];
        }
      });
      return result;
    } finally {
      native.close(src.rootFd);
      if (unpacked) removeTree(unpacked);
    }
  });
}
