/**
 * Images for the image tests and the bench, built here from the busybox
 * fixture: layers as tar buffers, an image config naming their diffIDs,
 * and the three input formats (docker-archive, OCI layout, OCI archive).
 * Also an oracle: the tree that applying the layers one after another
 * produces (image-spec layer.md), to compare a container's view against.
 */
import { createHash } from 'crypto';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import * as tar from 'tar-stream';
import { sha256 } from '../src/lib/image/store';
import { FIXTURE_ROOTFS, tarOf, tsrun } from './helpers';

export interface TestImage {
  layers: Buffer[];
  diffIDs: string[];
  config: Buffer;
}

export const hex = (digest: string): string => digest.slice(7);

/** The busybox fixture as one layer (numeric owners, as docker save writes them). */
export function baseLayer(): Buffer {
  const r = spawnSync('tar', ['-C', FIXTURE_ROOTFS, '--numeric-owner', '-cf', '-', '.'], { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`tar of the fixture: ${r.stderr}`);
  return r.stdout;
}

/** An image of these (uncompressed) layers; `config` is the image config's "config" object. */
export function imageOf(
  layers: Buffer[],
  config: Record<string, unknown> = { Cmd: ['/bin/sh'] },
  extra: Record<string, unknown> = {},
): TestImage {
  const diffIDs = layers.map(sha256);
  const body = { architecture: 'amd64', os: 'linux', ...extra, config, rootfs: { type: 'layers', diff_ids: diffIDs } };
  return { layers, diffIDs, config: Buffer.from(JSON.stringify(body)) };
}

/** `docker save` form: manifest.json, <config hex>.json, one directory per layer. */
export async function dockerArchive(
  img: TestImage,
  tag: string,
  mutate: (files: Record<string, Buffer>, manifest: any) => void = () => {},
): Promise<Buffer> {
  const files: Record<string, Buffer> = { [`${hex(sha256(img.config))}.json`]: img.config };
  img.layers.forEach((l, i) => {
    files[`l${i}/layer.tar`] = l;
  });
  const manifest = [
    { Config: `${hex(sha256(img.config))}.json`, RepoTags: [tag], Layers: img.layers.map((_, i) => `l${i}/layer.tar`) },
  ];
  mutate(files, manifest);
  return tarOf([
    ...Object.entries(files).map(([name, content]) => ({ name, type: 'file' as const, content })),
    { name: 'manifest.json', type: 'file', content: JSON.stringify(manifest) },
  ]);
}

/** Put `data` into the layout's blobs/sha256/; its digest. */
function putBlob(dir: string, data: Buffer): string {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const digest = sha256(data);
  fs.writeFileSync(path.join(blobs, hex(digest)), data);
  return digest;
}

/** `img` in the layout in `dir`: its config, gzip layers and manifest as blobs; the manifest's descriptor. */
export function layoutImage(dir: string, img: TestImage): { mediaType: string; digest: string; size: number } {
  const gz = img.layers.map((l) => zlib.gzipSync(l, { level: 1 }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: putBlob(dir, img.config),
        size: img.config.length,
      },
      layers: gz.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: putBlob(dir, l),
        size: l.length,
      })),
    }),
  );
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: putBlob(dir, manifest),
    size: manifest.length,
  };
}

/** index.json and oci-layout of the layout in `dir`, naming these descriptors. */
export function layoutIndex(dir: string, manifests: object[]): void {
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
}

/**
 * An OCI image layout in `dir`, layers gzip-compressed, the manifest named
 * `ref` (org.opencontainers.image.ref.name), or carrying these annotations;
 * returns the manifest's digest.
 */
export function ociLayout(dir: string, img: TestImage, ref: string | Record<string, string>): string {
  const desc = layoutImage(dir, img);
  const annotations = typeof ref === 'string' ? { 'org.opencontainers.image.ref.name': ref } : ref;
  layoutIndex(dir, [{ ...desc, annotations }]);
  return desc.digest;
}

/**
 * An OCI layout whose ref `ref` names an image index of these platforms'
 * images (a multi-platform image, as skopeo copy --all sends it); the
 * index's digest.
 */
export function multiPlatformLayout(
  dir: string,
  ref: string,
  images: Array<{ img: TestImage; platform: Record<string, string> }>,
): string {
  const manifests = images.map(({ img, platform }) => ({ ...layoutImage(dir, img), platform }));
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
  );
  const digest = putBlob(dir, index);
  layoutIndex(dir, [
    {
      mediaType: 'application/vnd.oci.image.index.v1+json',
      digest,
      size: index.length,
      annotations: { 'org.opencontainers.image.ref.name': ref },
    },
  ]);
  return digest;
}

/** An OCI archive: the layout in `layoutDir`, tarred into `file`. */
export function ociArchive(layoutDir: string, file: string): void {
  const r = spawnSync('tar', ['-C', layoutDir, '-cf', file, '.']);
  if (r.status !== 0) throw new Error(`tar of the layout: ${r.stderr}`);
}

/** What a store holds (layers, blobs, imports in progress, images.json), to compare before and after. */
export function storeSnapshot(store: string): string {
  const list = (d: string): string[] => (fs.existsSync(d) ? fs.readdirSync(d).sort() : []);
  const images = fs.existsSync(path.join(store, 'images.json'))
    ? fs.readFileSync(path.join(store, 'images.json'), 'utf8')
    : '';
  return JSON.stringify({
    layers: list(path.join(store, 'layers')),
    blobs: list(path.join(store, 'blobs/sha256')),
    tmp: list(path.join(store, 'tmp')),
    images,
  });
}

/** `tsrun image SUB --store STORE ARGS...`. */
export function image(store: string, args: string[], opts: Parameters<typeof tsrun>[2] = {}) {
  return tsrun('/tmp', ['image', args[0], '--store', store, ...args.slice(1)], opts);
}

/** One node of a filesystem tree, as `stat` inside a container reports it. */
export interface TreeNode {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  /** Files: size and md5 of the content; symlinks: the target. */
  size?: number;
  md5?: string;
  linkname?: string;
}

const TAR_TYPES: Record<string, TreeNode['type']> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'dir',
  symlink: 'symlink',
  'character-device': 'char',
  'block-device': 'block',
  fifo: 'fifo',
};

const clean = (name: string): string =>
  '/' +
  path.posix
    .normalize('/' + name)
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');

/**
 * The tree the layers make when applied in order onto an empty directory,
 * by layer.md's rules: whiteouts delete, an opaque marker empties its
 * directory of everything from below, a hardlink shares its target's content.
 */
export async function applyLayers(layers: Buffer[]): Promise<Map<string, TreeNode>> {
  const tree = new Map<string, TreeNode>([['/', { type: 'dir', mode: 0o755, uid: 0, gid: 0 }]]);
  const removeUnder = (p: string, keep: (q: string) => boolean = () => false): void => {
    for (const q of [...tree.keys()])
      if (q.startsWith(p === '/' ? '/' : p + '/') && q !== p && !keep(q)) tree.delete(q);
  };
  for (const layer of layers) {
    const added = new Set<string>();
    const extract = tar.extract();
    const done = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        const name = clean(h.name);
        const base = path.posix.basename(name);
        const dir = path.posix.dirname(name);
        if (base === '.wh..wh..opq') {
          removeUnder(dir, (q) => added.has(q));
          continue;
        }
        if (base.startsWith('.wh.')) {
          const victim = path.posix.join(dir, base.slice(4));
          tree.delete(victim);
          removeUnder(victim);
          continue;
        }
        added.add(name);
        if (h.type === 'link') {
          const target = tree.get(clean(h.linkname!));
          if (!target) throw new Error(`oracle: hardlink ${name} to a missing ${h.linkname}`);
          tree.set(name, target); // the same node: one inode
          continue;
        }
        const type = TAR_TYPES[h.type as string];
        if (!type) throw new Error(`oracle: tar type ${h.type}`);
        const old = tree.get(name);
        if (old && (old.type !== 'dir' || type !== 'dir')) removeUnder(name);
        const content = Buffer.concat(chunks);
        tree.set(name, {
          type,
          mode: (h.mode ?? 0o644) & 0o7777,
          uid: h.uid ?? 0,
          gid: h.gid ?? 0,
          ...(type === 'file' ? { size: content.length, md5: createHash('md5').update(content).digest('hex') } : {}),
          ...(type === 'symlink' ? { linkname: h.linkname } : {}),
        });
      }
    })();
    extract.end(layer);
    await done;
  }
  return tree;
}

/** A shell command for the container that prints its tree (one filesystem, the given tops left out) in seeTree's form. */
export function listTreeCommand(skip: string[] = ['/proc', '/dev', '/sys']): string {
  const prune = skip.map((p) => `-path ${p} -prune`).join(' -o ');
  return `find / -xdev \\( ${prune} \\) -o -exec stat -c '%n|%f|%u|%g|%s|%N' {} + ; echo ==; find / -xdev \\( ${prune} \\) -o -type f -exec md5sum {} +`;
}

/** Parse listTreeCommand's output into a tree (the pruned tops themselves are dropped). */
export function parseTree(output: string, skip: string[] = ['/proc', '/dev', '/sys']): Map<string, TreeNode> {
  const [stats, sums] = output.split('==\n');
  const md5s = new Map(
    sums
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [sum, ...rest] = l.split('  ');
        return [rest.join('  '), sum] as [string, string];
      }),
  );
  const tree = new Map<string, TreeNode>();
  for (const line of stats.trim().split('\n')) {
    const [name, rawMode, uid, gid, size, shown] = line.split('|');
    if (skip.includes(name)) continue;
    const mode = parseInt(rawMode, 16);
    const fmt = mode & 0o170000;
    const type = (
      {
        0o100000: 'file',
        0o040000: 'dir',
        0o120000: 'symlink',
        0o020000: 'char',
        0o060000: 'block',
        0o010000: 'fifo',
      } as Record<number, TreeNode['type']>
    )[fmt];
    const node: TreeNode = { type, mode: mode & 0o7777, uid: Number(uid), gid: Number(gid) };
    if (type === 'file') Object.assign(node, { size: Number(size), md5: md5s.get(name) });
    if (type === 'symlink') node.linkname = /-> '(.*)'$/.exec(shown)?.[1];
    tree.set(name, node);
  }
  return tree;
}

/** The oracle's tree in parseTree's terms (symlink modes are 0777 on Linux; the skipped tops dropped). */
export function comparable(
  tree: Map<string, TreeNode>,
  skip: string[] = ['/proc', '/dev', '/sys'],
): Record<string, TreeNode> {
  const out: Record<string, TreeNode> = {};
  for (const [name, node] of [...tree.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (skip.some((s) => name === s || name.startsWith(s + '/'))) continue;
    out[name] = node.type === 'symlink' ? { ...node, mode: 0o777 } : { ...node };
  }
  return out;
}
