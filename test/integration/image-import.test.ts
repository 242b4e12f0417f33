/**
 * `tsrun image import` from the three formats, built here from the busybox
 * fixture: a base layer and a layer that adds, changes, deletes (whiteout)
 * and hardlinks.  Layers are unpacked once and shared; the merged overlay
 * runs as a container and shows exactly the expected tree; bad digests,
 * diffIDs, truncated layers and escaping symlinks are refused with the
 * store unchanged; rm and gc remove exactly what nothing uses.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { sha256 } from '../../src/lib/image/store';
import {
  cleanupContainer,
  IS_ROOT,
  mountsUnder,
  tempDir,
  TSRUN,
  tsrun,
  uniqueId,
  tarOf,
  type TarEntry,
} from '../helpers';
import {
  baseLayer,
  dockerArchive,
  hex,
  image,
  imageOf,
  ociArchive,
  ociLayout,
  storeSnapshot,
  type TestImage,
} from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'image tests need root');
  process.exit(0);
}

type Entry = TarEntry;

async function makeImage(): Promise<TestImage> {
  const top = await tarOf([
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/added', type: 'file', mode: 0o644, content: 'from layer 2\n' },
    { name: 'etc/added-link', type: 'link', linkname: 'etc/added' },
    { name: 'bin/.wh.ls', type: 'file', content: '' },
    { name: 'var/.wh..wh..opq', type: 'file', content: '' },
    { name: 'var/only', type: 'file', content: 'only this in /var\n' },
  ]);
  return imageOf([baseLayer(), top], { Cmd: ['/bin/sh'], Env: ['PATH=/bin'], Labels: { 'org.example': 'yes' } });
}

t.test('three formats, one store: layers unpacked once, the merged tree runs', async (t) => {
  const work = tempDir(t, 'tsrun-img-');
  const store = path.join(work, 'store');
  const img = await makeImage();
  fs.writeFileSync(path.join(work, 'docker.tar'), await dockerArchive(img, 'test/img:docker'));
  ociLayout(path.join(work, 'layout'), img, 'test/img:oci');
  ociArchive(path.join(work, 'layout'), path.join(work, 'oci.tar'));

  const first = image(store, ['import', path.join(work, 'docker.tar')]);
  t.equal(first.status, 0, first.stderr);
  t.equal(first.stdout, 'docker.io/test/img:docker\n', 'the name in its canonical form, as podman shows it');
  const layerDirs = img.diffIDs.map((d) => path.join(store, 'layers', hex(d)));
  const inodes = layerDirs.map((d) => fs.statSync(d).ino);
  const second = image(store, ['import', path.join(work, 'layout')]);
  t.equal(second.status, 0, second.stderr);
  t.equal(second.stdout, 'docker.io/test/img:oci\n');
  const third = image(store, ['import', '--tag', 'extra', path.join(work, 'oci.tar')]);
  t.equal(third.status, 0, third.stderr);
  t.equal(third.stdout, 'docker.io/test/img:oci\ndocker.io/library/extra:latest\n');
  t.same(
    layerDirs.map((d) => fs.statSync(d).ino),
    inodes,
    'each layer unpacked exactly once',
  );
  t.same(fs.readdirSync(path.join(store, 'layers')).sort(), img.diffIDs.map(hex).sort());
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'no work left in tmp/');
  t.equal(
    image(store, ['ls', '-q']).stdout,
    'docker.io/library/extra:latest\ndocker.io/test/img:docker\ndocker.io/test/img:oci\n',
  );
  t.same(JSON.parse(image(store, ['inspect', 'test/img:docker']).stdout)[0].Config.Labels, { 'org.example': 'yes' });
  t.equal(image(store, ['inspect', hex(sha256(img.config)).slice(0, 12)]).status, 0, 'by config digest prefix');

  // The merged view, as the rootfs create mounts for a bundle made from the image.
  const bundle = path.join(work, 'bundle');
  const root = path.join(work, 'state');
  const made = tsrun(root, [
    'bundle',
    '--store',
    store,
    'test/img:oci',
    bundle,
    '--',
    'sh',
    '-c',
    'cat /etc/added; ls /bin/ls 2>&1; ls /var; stat -c %h /etc/added; echo hi > /tmp/w && cat /tmp/w',
  ]);
  t.equal(made.status, 0, made.stderr);
  const id = uniqueId('img');
  cleanupContainer(t, root, id);
  const r = tsrun(root, ['run', '--keep', '-b', bundle, id]);
  t.equal(r.status, 0, r.stderr);
  t.equal(
    r.stdout,
    'from layer 2\nls: /bin/ls: No such file or directory\nonly\n2\nhi\n',
    'added, whiteout, opaque dir, hardlink, and a writable upper',
  );
  const upper = fs.readdirSync(path.join(store, 'containers')).map((k) => path.join(store, 'containers', k, 'upper'));
  t.equal(upper.length, 1, 'one upper dir for the one container');
  t.equal(fs.readFileSync(path.join(upper[0], 'tmp', 'w'), 'utf8'), 'hi\n', 'writes land in the upper dir only');
  t.notOk(fs.existsSync(path.join(layerDirs[0], 'tmp', 'w')));
  t.equal(tsrun(root, ['delete', id]).status, 0);
  t.same(mountsUnder(bundle), [], 'delete unmounted the rootfs');
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'and removed its upper and work dirs');
});

t.test('bad input is refused, the store unchanged', async (t) => {
  const work = tempDir(t, 'tsrun-img-');
  const store = path.join(work, 'store');
  const img = await makeImage();
  fs.writeFileSync(path.join(work, 'good.tar'), await dockerArchive(img, 'good:1'));
  t.equal(image(store, ['import', path.join(work, 'good.tar')]).status, 0);
  const before = storeSnapshot(store);
  const other = { ...img, layers: [img.layers[0], await tarOf([{ name: 'x', type: 'file', content: 'x' }])] };
  Object.assign(other, imageOf(other.layers, {}));
  // Layers that try to write outside the store: contained (traversal) or refused (links).
  const outside = path.join(work, 'outside');
  fs.mkdirSync(outside);
  const hostile: Array<[string, Entry[], RegExp]> = [
    [
      'a symlink, then a write through it',
      [
        { name: 'esc', type: 'symlink', linkname: outside },
        { name: 'esc/victim', type: 'file', content: 'pwned' },
      ],
      /layer 2 \(l1\/layer\.tar\): esc\/victim: .*a parent is a symlink/,
    ],
    [
      'a hardlink to a host file',
      [{ name: 'hl', type: 'link', linkname: '/etc/passwd' }],
      /layer 2 \(l1\/layer\.tar\): hl: hardlink to an earlier entry of this layer/,
    ],
    [
      'a hardlink to a file of a lower layer',
      [{ name: 'hl', type: 'link', linkname: 'etc/passwd' }],
      /hl: hardlink to an earlier entry of this layer: no such file or directory/,
    ],
  ];
  const cases: Array<[string, () => Promise<Buffer>, RegExp]> = [
    [
      'config digest',
      () =>
        dockerArchive(other, 'bad:1', (files) => {
          const name = Object.keys(files).find((f) => f.endsWith('.json'))!;
          files[name] = Buffer.concat([files[name], Buffer.from(' ')]);
        }),
      /image config [0-9a-f]{64}\.json: digest mismatch/,
    ],
    [
      'diffID',
      () =>
        dockerArchive(other, 'bad:2', (files) => {
          files['l1/layer.tar'] = img.layers[1];
        }),
      /layer 2 \(l1\/layer\.tar\): diffID mismatch: the image config says sha256:[0-9a-f]{64}, the content is sha256:[0-9a-f]{64}/,
    ],
    [
      'truncated layer',
      () =>
        dockerArchive(other, 'bad:3', (files) => {
          files['l1/layer.tar'] = files['l1/layer.tar'].subarray(0, 700);
        }),
      /layer 2 \(l1\/layer\.tar\)/,
    ],
    [
      'a layer that is a symlink to a host file',
      async () => {
        const files: Entry[] = [
          { name: `${hex(sha256(other.config))}.json`, type: 'file', content: other.config },
          { name: 'l0/layer.tar', type: 'file', content: other.layers[0] },
          { name: 'l1/layer.tar', type: 'symlink', linkname: '/etc/passwd' },
          {
            name: 'manifest.json',
            type: 'file',
            content: JSON.stringify([
              {
                Config: `${hex(sha256(other.config))}.json`,
                RepoTags: ['bad:4'],
                Layers: ['l0/layer.tar', 'l1/layer.tar'],
              },
            ]),
          },
        ];
        return tarOf(files);
      },
      /l1\/layer\.tar: open: no such file or directory/,
    ],
    [
      'not an image',
      () => tarOf([{ name: 'hello', type: 'file', content: 'x' }]),
      /neither a docker-archive \(manifest\.json\) nor an OCI image layout \(index\.json\)/,
    ],
    ...hostile.map(([what, entries, message]): [string, () => Promise<Buffer>, RegExp] => [
      what,
      async () => dockerArchive(imageOf([img.layers[0], await tarOf(entries)], {}), `hostile:${what.length}`),
      message,
    ]),
  ];
  for (const [what, build, message] of cases) {
    const file = path.join(work, `${what.replace(/\W+/g, '-')}.tar`);
    fs.writeFileSync(file, await build());
    const r = image(store, ['import', file]);
    t.not(r.status, 0, `${what}: refused`);
    t.match(r.stderr, message, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    t.equal(storeSnapshot(store), before, `${what}: the store is unchanged`);
  }
  t.same(fs.readdirSync(outside), [], 'nothing was written outside the store');
  // Traversal is contained: "../../x" and "/x" land inside the layer.
  const contained = imageOf(
    [
      img.layers[0],
      await tarOf([
        { name: '../../../escaped', type: 'file', content: 'in' },
        { name: `${outside}/abs`, type: 'file', content: 'in' },
      ]),
    ],
    {},
  );
  fs.writeFileSync(path.join(work, 'contained.tar'), await dockerArchive(contained, 'contained:1'));
  t.equal(image(store, ['import', path.join(work, 'contained.tar')]).status, 0);
  const layer = path.join(store, 'layers', hex(contained.diffIDs[1]));
  t.equal(fs.readFileSync(path.join(layer, 'escaped'), 'utf8'), 'in');
  t.equal(fs.readFileSync(path.join(layer, outside.slice(1), 'abs'), 'utf8'), 'in');
  t.same(fs.readdirSync(outside), [], 'still nothing outside');
  t.match(image(store, ['import', path.join(work, 'missing.tar')]).stderr, /missing\.tar: no such file or directory/);
  const fresh = path.join(work, 'fresh-store');
  t.not(image(fresh, ['import', path.join(work, 'not-an-image.tar')]).status, 0);
  t.notOk(fs.existsSync(fresh), 'a failed first import leaves no store behind');
  t.match(image(fresh, ['rm', 'x']).stderr, /^tsrun: image rm x: no image store at /, 'rm does not make a store');
  t.notOk(fs.existsSync(fresh));
  t.match(image(store, ['inspect', 'nope']).stderr, /image "nope" is not in the store/);
});

t.test('rm and gc remove exactly what nothing uses', async (t) => {
  const work = tempDir(t, 'tsrun-img-');
  const store = path.join(work, 'store');
  const img = await makeImage();
  const second = { ...img, layers: [img.layers[0], await tarOf([{ name: 'y', type: 'file', content: 'y' }])] };
  Object.assign(second, imageOf(second.layers, {}));
  fs.writeFileSync(path.join(work, 'a.tar'), await dockerArchive(img, 'a:1'));
  fs.writeFileSync(path.join(work, 'b.tar'), await dockerArchive(second, 'b:1'));
  t.equal(image(store, ['import', path.join(work, 'a.tar')]).status, 0);
  t.equal(image(store, ['import', path.join(work, 'b.tar')]).status, 0);
  t.equal(fs.readdirSync(path.join(store, 'layers')).length, 3, 'the base layer is shared');
  t.equal(image(store, ['rm', 'a:1']).status, 0);
  t.same(
    fs.readdirSync(path.join(store, 'layers')).sort(),
    second.diffIDs.map(hex).sort(),
    "a's own layer went, the shared base stayed",
  );
  t.same(
    fs.readdirSync(path.join(store, 'blobs', 'sha256')).sort(),
    [sha256(second.config), ...second.diffIDs].map(hex).sort(),
    "b's config and its layers' blobs (a docker-archive's plain tars, whose digests are the diffIDs), kept for a push",
  );
  t.equal(image(store, ['gc']).stdout, '', 'nothing more to collect');
  t.match(image(store, ['rm', 'b']).stderr, /image "b" is not in the store/, '"b" means b:latest, which is not there');
  t.equal(image(store, ['rm', 'b:1']).status, 0);
  t.same(fs.readdirSync(path.join(store, 'layers')), [], 'all gone');
});

t.test('concurrent imports of the same layers are safe', async (t) => {
  const work = tempDir(t, 'tsrun-img-');
  const store = path.join(work, 'store');
  const img = await makeImage();
  fs.writeFileSync(path.join(work, 'a.tar'), await dockerArchive(img, 'same:a'));
  fs.writeFileSync(path.join(work, 'b.tar'), await dockerArchive(img, 'same:b'));
  const importer = (file: string): Promise<{ code: number | null; err: string }> =>
    new Promise((resolve) => {
      const child = spawn(TSRUN, ['image', 'import', '--store', store, file], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { PATH: process.env.PATH },
      });
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
      });
      child.on('close', (code) => resolve({ code, err }));
    });
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all([
      importer(path.join(work, 'a.tar')),
      importer(path.join(work, 'b.tar')),
      importer(path.join(work, 'a.tar')),
    ]);
    t.same(
      results.map((r) => r.code),
      [0, 0, 0],
      `round ${round}: all three succeed ${results.map((r) => r.err).join('')}`,
    );
    t.same(fs.readdirSync(path.join(store, 'layers')).sort(), img.diffIDs.map(hex).sort(), 'one directory per layer');
    t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'no half-made copies left');
    t.equal(
      image(store, ['ls', '-q']).stdout,
      'docker.io/library/same:a\ndocker.io/library/same:b\n',
      'both names recorded',
    );
    if (round < 2) t.equal(image(store, ['rm', 'same:a', 'same:b']).status, 0);
  }
});
