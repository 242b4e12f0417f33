/**
 * `tsrun image push SOURCE [DEST]`: an image of the store to a registry,
 * as docker push does it: each blob (the layers as kept, then the config)
 * is first asked for (HEAD) and skipped when the repository has it,
 * mounted from the repository it was pulled from when that is in the same
 * registry, and uploaded otherwise; then the manifest under the tag.
 *
 * What is pushed is the image's own manifest when it has one (pulled, or
 * imported from an OCI layout), byte for byte, so its digest stays the
 * same; an image from a docker-archive, which has none, gets an OCI
 * manifest of its config and plain tar layers.  A layer whose blob the
 * store does not keep (the layer came with an image imported or pulled
 * earlier, in another compression) is pushed only if the registry has it
 * already; otherwise the push is refused naming it.
 */
import fs = require('fs');
import { TsrunError } from '../errors';
import { type Descriptor, MEDIA, RegistryClient } from '../registry/client';
import { type Credentials, credentialsFor } from '../registry/credentials';
import { endpointOf } from '../registry/hosts';
import type { PullProgress } from './pull';
import { formatReference, parseReference } from './reference';
import { type ImageRecord, type ImageStore, sha256 } from './store';

export interface PushOptions {
  insecure?: string[];
  certDir?: string;
  credentials?: (domain: string, repository: string) => Credentials | undefined;
  onProgress?: (p: PullProgress) => void;
}

export interface PushResult {
  /** "127.0.0.1:5000/busybox:latest". */
  ref: string;
  digest: string;
  uploaded: number;
  skipped: number;
  mounted: number;
}

/** The manifest to push, and its media type and descriptors. */
function manifestOf(
  store: ImageStore,
  image: ImageRecord,
  name: string,
): { data: Buffer; mediaType: string; blobs: Descriptor[] } {
  if (image.manifest) {
    const data = store.readBlob(image.manifest);
    const body = JSON.parse(data.toString('utf8')) as { mediaType?: string; config: Descriptor; layers: Descriptor[] };
    const mediaType = body.mediaType ?? MEDIA.ociManifest;
    return { data, mediaType, blobs: [...body.layers, body.config] };
  }
  if (!image.layerBlobs || image.layerBlobs.length !== image.layers.length)
    throw new TsrunError(
      `image ${name}: the store keeps no layer blobs for it (imported before tsrun kept them); import it again`,
    );
  const configSize = fs.statSync(store.blobPath(image.config)).size;
  const body = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: image.config, size: configSize },
    layers: image.layerBlobs.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  };
  const data = Buffer.from(JSON.stringify(body));
  return { data, mediaType: MEDIA.ociManifest, blobs: [...body.layers, body.config] };
}

export async function pushImage(
  store: ImageStore,
  source: string,
  dest: string | undefined,
  opts: PushOptions = {},
): Promise<PushResult> {
  // The shared lock: gc (exclusive) takes no blob while it is being sent.
  const lock = store.lock('shared');
  try {
    return await pushLocked(store, source, dest, opts);
  } finally {
    store.unlock(lock);
  }
}

async function pushLocked(
  store: ImageStore,
  source: string,
  dest: string | undefined,
  opts: PushOptions,
): Promise<PushResult> {
  const { ref: name, image } = store.resolve(source);
  const target = parseReference(dest ?? name);
  if (target.digest) throw new TsrunError(`push to "${dest ?? name}": a destination is a tag, not a digest`);
  const { data, mediaType, blobs } = manifestOf(store, image, name);
  let creds: { value?: Credentials } | undefined;
  const client = new RegistryClient(endpointOf(target.domain, opts.insecure, opts.certDir), target.path, () => {
    creds ??= { value: (opts.credentials ?? credentialsFor)(target.domain, target.path) };
    return creds.value;
  });
  // A repository of the same registry the image came from: its blobs can be mounted rather than sent.
  const from = image.source ? parseReference(image.source) : undefined;
  const mountFrom = from && from.domain === target.domain && from.path !== target.path ? from.path : undefined;
  const layers = blobs.slice(0, -1);
  const progress: PullProgress = {
    ref: formatReference(target),
    layers: layers.map((b) => ({ digest: b.digest, size: b.size, done: 0, state: 'waiting' })),
  };
  const report = (): void => opts.onProgress?.(progress);
  const result: PushResult = {
    ref: formatReference(target),
    digest: sha256(data),
    uploaded: 0,
    skipped: 0,
    mounted: 0,
  };
  // One at a time, lowest first, as the registry will list them; the config last, as docker sends it.
  for (const [i, blob] of blobs.entries()) {
    const shown = progress.layers[i] as PullProgress['layers'][number] | undefined;
    if (await client.hasBlob(blob.digest)) {
      result.skipped++;
      if (shown) shown.state = 'remote';
      report();
      continue;
    }
    let session: string | undefined;
    if (mountFrom) {
      const mounted = await client.mountBlob(blob.digest, mountFrom);
      if (mounted === true) {
        result.mounted++;
        if (shown) shown.state = 'mounted';
        report();
        continue;
      }
      session = mounted;
    }
    const file = store.blobPath(blob.digest);
    if (!fs.existsSync(file))
      throw new TsrunError(
        `image ${name}: blob ${blob.digest} is not kept in the store (its layer came with another image), and ${result.ref.replace(/:[^:/]*$/, '')} does not have it`,
      );
    if (fs.statSync(file).size !== blob.size)
      throw new TsrunError(`image ${name}: blob ${blob.digest} in the store is not ${blob.size} bytes`);
    if (shown) shown.state = 'pushing';
    report();
    await client.upload(blob, file, session, (n) => {
      if (shown) shown.done += n;
      report();
    });
    result.uploaded++;
    if (shown) shown.state = 'pushed';
    report();
  }
  const digest = await client.putManifest(target.tag ?? 'latest', data, mediaType);
  return { ...result, digest };
}
