/**
 * `tsrun image pull`, and `run --image` / `bundle` when the image is not
 * in the store: an image from a registry (registry/client.ts) into the
 * store, each layer fetched once.
 *
 * 1. The manifest by tag or digest; an image index (multi-platform) gives
 *    the manifest of the platform asked (platform.ts).
 * 2. The image config, verified; its diffIDs say which layers the store
 *    already has: those are not downloaded at all.
 * 3. The others are downloaded side by side (three at a time, as docker
 *    does), each verified against its digest as it comes and taken up
 *    again where it broke; they are unpacked in order, bottom first, as
 *    each is complete (a layer's unpacking reads the layers below it, see
 *    unpack.ts), and checked against their diffIDs.
 * 4. The manifest, index and config go into blobs/, the downloaded layer
 *    blobs too (kept for a push), and the name into images.json.
 *
 * All of it under the store's shared lock (an import), in tmp/ until
 * verified: a pull that fails leaves layers it completed, verified, and
 * nothing else.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { removeTree } from '../remove-tree';
import { type Descriptor, type Manifest, MEDIA, RegistryClient } from '../registry/client';
import { type Credentials, credentialsFor } from '../registry/credentials';
import { endpointOf } from '../registry/hosts';
import { mergedDirAttributes } from './merged';
import { choosePlatform, formatPlatform, hostPlatform, type Platform } from './platform';
import { formatReference, parseReference, repositoryOf } from './reference';
import { type ImageRecord, type ImageStore } from './store';
import { unpackLayer } from './unpack';
import { inStoreNamespace, mappedIdLimits } from './user-store';

/** A layer's state in a pull, or in a push (push.ts): what the display shows for it. */
export type LayerState =
  | 'waiting'
  | 'downloading'
  | 'downloaded'
  | 'extracting'
  | 'complete'
  | 'exists'
  | 'pushing'
  | 'pushed'
  | 'mounted'
  | 'remote';

export interface LayerProgress {
  digest: string;
  size: number;
  /** Bytes downloaded so far. */
  done: number;
  state: LayerState;
}

export interface PullProgress {
  ref: string;
  layers: LayerProgress[];
}

export interface PullOptions {
  /** Default: this machine's. */
  platform?: Platform;
  /** Registries (as named in references) to reach without verified TLS: --tls-verify=false. */
  insecure?: string[];
  /** --cert-dir: the registry's certificates, instead of certs.d. */
  certDir?: string;
  onProgress?: (p: PullProgress) => void;
  /** Downloads at once (docker's default, 3). */
  concurrency?: number;
  /** Where credentials come from (tests give their own). */
  credentials?: (domain: string, repository: string) => Credentials | undefined;
}

export interface PullResult {
  /** The name in the store. */
  ref: string;
  /** The digest the registry names the image by (its index's, if it has one). */
  digest: string;
  downloaded: number;
  present: number;
  /** The store had this image under this name already, layers and all. */
  upToDate: boolean;
}

/** Layers tsrun unpacks (unpack.ts tells gzip from plain by the bytes). */
const LAYER_TYPES = new Set<string>([MEDIA.ociLayer, MEDIA.ociLayerGzip, MEDIA.dockerLayerGzip]);
const CONFIG_TYPES = new Set<string>([MEDIA.ociConfig, MEDIA.dockerConfig]);
/** An image config is a few KiB; one with a long history, some hundreds. */
const MAX_CONFIG_BYTES = 8 << 20;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

function descriptorOf(raw: unknown, at: string): Descriptor {
  const d = raw as Partial<Descriptor> | undefined;
  if (typeof d?.digest !== 'string') throw new TsrunError(`${at}: no digest`);
  if (!DIGEST.test(d.digest))
    throw new TsrunError(`${at}: digest "${d.digest}" is not sha256 (the only algorithm tsrun verifies)`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    throw new TsrunError(`${at}: size must be a non-negative integer`);
  return { digest: d.digest, size: d.size, mediaType: typeof d.mediaType === 'string' ? d.mediaType : '' };
}

const isIndex = (m: Manifest): boolean => m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerList;

function parseJson(m: Manifest, what: string): Record<string, unknown> {
  const parsed = JSON.parse(m.data.toString('utf8')) as unknown;
  if (typeof parsed !== 'object' || parsed === null) throw new TsrunError(`${what}: not a JSON object`);
  return parsed as Record<string, unknown>;
}

/** The index's entry for `want`, or an error listing what it has. */
function pickFromIndex(index: Manifest, want: Platform, what: string): Descriptor {
  const body = parseJson(index, what);
  if (!Array.isArray(body.manifests)) throw new TsrunError(`${what}: manifests must be an array`);
  const entries = body.manifests.map((raw: unknown, i: number) => ({
    ...descriptorOf(raw, `${what}.manifests[${i}]`),
    platform: (raw as { platform?: Partial<Platform> }).platform,
  }));
  const chosen = choosePlatform(entries, want);
  if (!chosen) {
    const has = [...new Set(entries.filter((e) => e.platform?.os).map((e) => formatPlatform(e.platform as Platform)))];
    throw new TsrunError(
      `${what}: no image for ${formatPlatform(want)}${has.length ? ` (it has ${has.join(', ')})` : ''}; --platform chooses another`,
    );
  }
  return chosen;
}

function parseImageManifest(m: Manifest, what: string): { config: Descriptor; layers: Descriptor[] } {
  if (m.mediaType !== MEDIA.ociManifest && m.mediaType !== MEDIA.dockerManifest)
    throw new TsrunError(`${what}: media type "${m.mediaType}" is not an image manifest`);
  const body = parseJson(m, what);
  const config = descriptorOf(body.config, `${what}: config`);
  if (!CONFIG_TYPES.has(config.mediaType))
    throw new TsrunError(`${what}: not a container image (its config is "${config.mediaType}")`);
  if (!Array.isArray(body.layers)) throw new TsrunError(`${what}: layers must be an array`);
  const layers = body.layers.map((raw: unknown, i: number) => {
    const d = descriptorOf(raw, `${what}: layers[${i}]`);
    if (!LAYER_TYPES.has(d.mediaType))
      throw new TsrunError(
        `${what}: layers[${i}]: media type "${d.mediaType}" is not supported (${d.mediaType.includes('zstd') ? 'zstd layers are not' : d.mediaType.includes('foreign') || d.mediaType.includes('nondistributable') ? 'foreign layers, fetched from elsewhere, are not' : 'only tar and tar+gzip layers are'})`,
      );
    return d;
  });
  return { config, layers };
}

/** At most `n` of the jobs at once. */
function limiter(n: number): <T>(job: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: Array<() => void> = [];
  return async (job) => {
    if (running >= n) await new Promise<void>((resolve) => queue.push(resolve));
    running++;
    try {
      return await job();
    } finally {
      running--;
      queue.shift()?.();
    }
  };
}

export async function pullImage(store: ImageStore, text: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(text);
  const want = opts.platform ?? hostPlatform();
  const repository = repositoryOf(ref);
  // One name: by digest when one is given (docker too drops the tag then).
  const name = formatReference({ ...ref, tag: ref.digest ? undefined : ref.tag });
  let creds: { value?: Credentials } | undefined;
  const client = new RegistryClient(endpointOf(ref.domain, opts.insecure, opts.certDir), ref.path, () => {
    creds ??= { value: (opts.credentials ?? credentialsFor)(ref.domain, ref.path) };
    return creds.value;
  });
  const top = await client.manifest(ref.digest ?? ref.tag!);
  let manifest = top;
  let index: Manifest | undefined;
  if (isIndex(top)) {
    index = top;
    const chosen = pickFromIndex(top, want, `${repository}: index ${top.digest}`);
    manifest = await client.manifest(chosen.digest);
    if (isIndex(manifest))
      throw new TsrunError(`${repository}: index ${top.digest}: its ${formatPlatform(want)} entry is an index itself`);
  }
  const what = `${repository}: manifest ${manifest.digest}`;
  const { config: configDesc, layers } = parseImageManifest(manifest, what);
  const configData = await client.blob(configDesc, MAX_CONFIG_BYTES);
  let config: { os?: unknown; architecture?: unknown; variant?: unknown; rootfs?: { diff_ids?: unknown } };
  try {
    config = JSON.parse(configData.toString('utf8')) as typeof config;
  } catch {
    throw new TsrunError(`${repository}: image config ${configDesc.digest}: not JSON`);
  }
  const diffIDs = config.rootfs?.diff_ids;
  if (
    !Array.isArray(diffIDs) ||
    diffIDs.length !== layers.length ||
    !diffIDs.every((d) => typeof d === 'string' && DIGEST.test(d))
  )
    throw new TsrunError(
      `${repository}: image config ${configDesc.digest}: rootfs.diff_ids must list one sha256 diffID per layer (${layers.length})`,
    );
  if (config.os !== undefined && config.os !== 'linux')
    throw new TsrunError(`${repository}: image config ${configDesc.digest}: os "${String(config.os)}", not linux`);
  if (!index && config.architecture !== undefined && config.architecture !== want.architecture)
    warn(`${name}: the image is for ${String(config.architecture)}, not ${formatPlatform(want)}`);

  return store.importing(async () => {
    const existing = store.images()[name];
    const digest = index?.digest ?? manifest.digest;
    const progress: PullProgress = {
      ref: name,
      layers: layers.map((l, i) => ({
        digest: l.digest,
        size: l.size,
        done: 0,
        state: store.hasLayer(diffIDs[i] as string) ? 'exists' : 'waiting',
      })),
    };
    const report = (): void => opts.onProgress?.(progress);
    report();
    const work = store.tempDir();
    let cancelled = false;
    const limit = limiter(opts.concurrency ?? 3);
    /** One download per blob, however often the image lists it. */
    const downloads = new Map<string, Promise<string>>();
    const download = (i: number): Promise<string> => {
      const layer = layers[i];
      let started = downloads.get(layer.digest);
      if (!started) {
        started = limit(async () => {
          if (cancelled) throw new TsrunError('pull cancelled');
          const file = path.join(work, layer.digest.slice(7));
          progress.layers[i].state = 'downloading';
          report();
          await client.download(layer, file, (n) => {
            if (cancelled) throw new TsrunError('pull cancelled');
            progress.layers[i].done += n;
            report();
          });
          if (progress.layers[i].state === 'downloading') progress.layers[i].state = 'downloaded';
          report();
          return file;
        });
        started.catch(() => {}); // awaited below; a failure before then is not unhandled
        downloads.set(layer.digest, started);
      }
      return started;
    };
    const wanted = layers.map((_, i) => i).filter((i) => progress.layers[i].state === 'waiting');
    for (const i of wanted) void download(i);
    let downloaded = 0;
    try {
      for (const i of wanted) {
        const diffID = diffIDs[i] as string;
        const file = await download(i);
        if (store.hasLayer(diffID)) {
          // The image lists it twice, or another pull made it meanwhile.
          progress.layers[i].state = 'complete';
          continue;
        }
        progress.layers[i].state = 'extracting';
        report();
        const tmp = store.tempDir();
        fs.chmodSync(tmp, 0o755); // a layer's root without a "./" entry is a container's /: 0755
        try {
          const lowerDirs = (diffIDs.slice(0, i) as string[]).map((d) => store.layerPath(d));
          const { diffID: actual } = await unpackLayer(
            fs.createReadStream(file, { highWaterMark: 1 << 20 }),
            tmp,
            `${repository}: layer ${i + 1} (${layers[i].digest})`,
            (rel) => mergedDirAttributes(lowerDirs, rel),
            inStoreNamespace() ? mappedIdLimits() : undefined,
          );
          if (actual !== diffID)
            throw new TsrunError(
              `${repository}: layer ${i + 1} (${layers[i].digest}): diffID mismatch: the image config says ${diffID}, the content is ${actual}`,
            );
          store.commitLayer(tmp, diffID);
        } catch (err) {
          removeTree(tmp);
          throw err;
        }
        // The blob as served, for a push (a copy already there wins).
        if (!fs.existsSync(store.blobPath(layers[i].digest))) fs.renameSync(file, store.blobPath(layers[i].digest));
        downloaded++;
        progress.layers[i].state = 'complete';
        report();
      }
    } catch (err) {
      cancelled = true;
      await Promise.allSettled(downloads.values());
      removeTree(work);
      throw err;
    }
    removeTree(work);
    store.putBlob(configDesc.digest, configData);
    store.putBlob(manifest.digest, manifest.data);
    if (index) store.putBlob(index.digest, index.data);
    const record: ImageRecord = {
      config: configDesc.digest,
      manifest: manifest.digest,
      ...(index ? { index: index.digest } : {}),
      layers: diffIDs as string[],
      layerBlobs: layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })),
      source: repository,
      imported: new Date().toISOString(),
    };
    const upToDate =
      downloaded === 0 &&
      existing !== undefined &&
      existing.config === record.config &&
      existing.manifest === record.manifest;
    store.updateImages((images) => {
      images[name] = upToDate ? { ...record, imported: existing.imported } : record;
      delete images[record.config]; // named now: no longer kept under its ID alone
    });
    return { ref: name, digest, downloaded, present: layers.length - wanted.length, upToDate };
  });
}
