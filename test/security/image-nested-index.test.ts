/**
 * Issue 14, finding 7: an OCI layout's index.json may list image indexes
 * that list further indexes, and the importer walked every path through
 * them.  Three 64-way indexes, each listing the next one 64 times (a few
 * dozen KB of JSON), expanded to 262,144 manifests: 23 s and 646 MB of
 * memory for what is one image.  Each digest is now walked once, and the
 * nesting of indexes and the number of descriptors walked are bounded,
 * with an error naming the limit and the index where it was exceeded.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { sha256 } from '../../src/lib/image/store';
import { IS_ROOT, tarOf, tempDir } from '../helpers';
import { hex, image, imageOf, ociLayout, storeSnapshot, type TestImage } from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'image tests need root');
  process.exit(0);
}

const INDEX = 'application/vnd.oci.image.index.v1+json';
const REF = 'org.opencontainers.image.ref.name';

/**
 * The fixed importer needs well under a second for each of these inputs;
 * the unbounded walk needed 23 s for the nested one.  A kill at 10 s tells
 * the two apart on a slow machine too, and the walk's memory use (which a
 * test cannot bound directly) shows as not finishing.
 */
const IMPORT_TIMEOUT_MS = 10_000;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A one-layer image of its own, so a partial import of it would add a layer to the store. */
async function smallImage(name: string): Promise<TestImage> {
  return imageOf([await tarOf([{ name, type: 'file', mode: 0o644, content: `${name}\n` }])], { Cmd: ['/bin/sh'] });
}

/**
 * An OCI layout of `img` in `dir` whose index.json lists what `top`
 * makes of the image manifest's descriptor; `index` writes an image
 * index blob listing the given descriptors and returns its descriptor.
 */
function nestedLayout(
  dir: string,
  img: TestImage,
  top: (manifest: Descriptor, index: (manifests: Descriptor[]) => Descriptor) => Descriptor[],
): void {
  ociLayout(dir, img, 'replaced');
  // The manifest's descriptor without ociLayout's name: `top` names what it lists.
  const listed = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')).manifests[0] as Descriptor;
  const manifest: Descriptor = { mediaType: listed.mediaType, digest: listed.digest, size: listed.size };
  const index = (manifests: Descriptor[]): Descriptor => {
    const data = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }));
    const digest = sha256(data);
    fs.writeFileSync(path.join(dir, 'blobs', 'sha256', hex(digest)), data);
    return { mediaType: INDEX, digest, size: data.length };
  };
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: top(manifest, index) }));
}

const named = (desc: Descriptor, ref: string): Descriptor => ({ ...desc, annotations: { [REF]: ref } });

/** A chain of `depth` single-entry indexes above the manifest, the outermost named `ref`. */
function chain(
  manifest: Descriptor,
  index: (m: Descriptor[]) => Descriptor,
  depth: number,
  ref: string,
): { top: Descriptor[]; indexes: Descriptor[] } {
  const indexes: Descriptor[] = [];
  let below = manifest;
  for (let i = 0; i < depth; i++) indexes.unshift((below = index([below])));
  return { top: [named(below, ref)], indexes };
}

t.test('3 x 64-way nested indexes: one image, walked once, in bounded time', async (t) => {
  const work = tempDir(t, 'tsrun-nested-');
  const store = path.join(work, 'store');
  const layout = path.join(work, 'layout');
  const img = await smallImage('nested');
  let indexBytes = 0;
  nestedLayout(layout, img, (manifest, index) => {
    const wide = (d: Descriptor): Descriptor => {
      const made = index(Array(64).fill(d));
      indexBytes += made.size;
      return made;
    };
    const l1 = wide(manifest);
    const l3 = wide(wide(l1));
    // The same manifest also under a second name, and under the first name
    // again by another path: one image with each name once.
    return [named(l3, 'nested/img:a'), named(manifest, 'nested/img:b'), named(l1, 'nested/img:a')];
  });
  t.ok(indexBytes < 100_000, `the three indexes are small (${indexBytes} bytes) yet list 64^3 paths`);

  const r = image(store, ['import', layout], { timeoutMs: IMPORT_TIMEOUT_MS });
  t.equal(r.signal, null, `finished within ${IMPORT_TIMEOUT_MS / 1000} s`);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'docker.io/nested/img:a\ndocker.io/nested/img:b\n', 'one image, each of its names once');
  t.same(fs.readdirSync(path.join(store, 'layers')), [hex(img.diffIDs[0])], 'its one layer');
  const images = JSON.parse(fs.readFileSync(path.join(store, 'images.json'), 'utf8'));
  t.same(Object.keys(images).sort(), ['docker.io/nested/img:a', 'docker.io/nested/img:b']);
  t.same(images['docker.io/nested/img:a'], images['docker.io/nested/img:b'], 'both names are the one image');
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'no work left in tmp/');
});

t.test('nesting and width past the limits are refused by name, the store unchanged', async (t) => {
  const work = tempDir(t, 'tsrun-nested-');
  const store = path.join(work, 'store');

  // Eight indexes from index.json down to the manifest is the most there may be.
  const deepest = path.join(work, 'deepest');
  const ok = await smallImage('deepest');
  nestedLayout(deepest, ok, (manifest, index) => chain(manifest, index, 7, 'deep/ok:1').top);
  const accepted = image(store, ['import', deepest], { timeoutMs: IMPORT_TIMEOUT_MS });
  t.equal(accepted.status, 0, `index.json and 7 nested indexes are accepted: ${accepted.stderr}`);
  t.equal(accepted.stdout, 'docker.io/deep/ok:1\n');
  const before = storeSnapshot(store);

  const deeper = path.join(work, 'deeper');
  let ninth = '';
  nestedLayout(deeper, await smallImage('deeper'), (manifest, index) => {
    const { top, indexes } = chain(manifest, index, 8, 'deep/bad:1');
    ninth = indexes[7].digest; // index.json is the first index on the path
    return top;
  });

  const wide = path.join(work, 'wide');
  let wideIndex = '';
  nestedLayout(wide, await smallImage('wide'), (manifest, index) => {
    const made = index(Array(5000).fill(manifest));
    wideIndex = made.digest;
    return [named(made, 'wide/bad:1')];
  });

  const cases: Array<[string, string, string]> = [
    ['nine nested indexes', deeper, `index ${ninth}: image indexes nested deeper than 8`],
    [
      'a 5000-way index',
      wide,
      `index ${wideIndex}.manifests[4095]: more than 4096 descriptors in the layout's image indexes`,
    ],
  ];
  for (const [what, input, reason] of cases) {
    const r = image(store, ['import', input], { timeoutMs: IMPORT_TIMEOUT_MS });
    t.equal(r.signal, null, `${what}: finished within ${IMPORT_TIMEOUT_MS / 1000} s`);
    t.not(r.status, 0, `${what}: refused`);
    t.equal(r.stderr, `tsrun: image import: ${reason}\n`, `${what}: the limit and where it was exceeded, in one line`);
    t.equal(storeSnapshot(store), before, `${what}: no layer, blob, tmp dir or name added`);
  }
});
