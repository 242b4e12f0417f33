/**
 * Issue 17: image names as docker and podman name them.  The archives are
 * shaped as each tool writes them: `docker save` records familiar names
 * (`busybox:latest`), `podman save` canonical ones (`docker.io/library/x:1`,
 * and `localhost/x:1` for what it built), skopeo's OCI layout only a tag
 * (`oci:DIR:2.0` writes ref.name "2.0"), containerd's export a tag plus
 * io.containerd.image.name.  Every spelling of a name finds its image;
 * a short name finds a localhost/ image, as in podman; NAME@DIGEST finds
 * that repository's image with that manifest; a tag alone names nothing.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, runCommand, tempDir, TSRUN } from '../helpers';
import { sha256 } from '../../src/lib/image/store';
import { baseLayer, dockerArchive, image, imageOf, ociLayout } from '../image-helpers';
import { pathsMadeAfter, podmanTurn } from '../engine-helpers';

if (!IS_ROOT) {
  t.plan(0, 'image tests need root');
  process.exit(0);
}

const sha256Hex = (data: Buffer): string => sha256(data).slice(7);
const found = (store: string, ref: string): boolean => image(store, ['inspect', ref]).status === 0;

t.test('docker save and podman save names: every spelling finds the image', async (t) => {
  const work = tempDir(t, 'tsrun-names-');
  const store = path.join(work, 'store');
  const base = baseLayer();
  const docker = imageOf([base], { Cmd: ['/bin/sh'], Labels: { from: 'docker' } });
  fs.writeFileSync(path.join(work, 'docker.tar'), await dockerArchive(docker, 'busybox:latest'));
  const r = image(store, ['import', path.join(work, 'docker.tar')]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'docker.io/library/busybox:latest\n', 'stored under its canonical name');
  for (const ref of [
    'busybox',
    'busybox:latest',
    'library/busybox',
    'docker.io/busybox',
    'docker.io/library/busybox:latest',
  ])
    t.ok(found(store, ref), `"${ref}" finds it`);
  t.notOk(found(store, 'busybox:1.36'), 'another tag does not');

  // podman save of an image it pulled and tagged locally: both names, as written.
  const podman = imageOf([base], { Cmd: ['/bin/sh'], Labels: { from: 'podman' } });
  fs.writeFileSync(
    path.join(work, 'podman.tar'),
    await dockerArchive(podman, 'docker.io/library/pod:1', (_files, manifest) => {
      manifest[0].RepoTags = ['docker.io/library/pod:1', 'localhost/pod:1'];
    }),
  );
  const p = image(store, ['import', path.join(work, 'podman.tar')]);
  t.equal(p.stdout, 'docker.io/library/pod:1\nlocalhost/pod:1\n', 'the two names the archive gives, no more');
  for (const ref of ['pod:1', 'library/pod:1', 'docker.io/library/pod:1', 'localhost/pod:1'])
    t.ok(found(store, ref), `"${ref}" finds it`);

  // What podman built: only localhost/NAME; a short name finds it, as in podman.
  const built = imageOf([base], { Cmd: ['/bin/sh'], Labels: { from: 'buildah' } });
  fs.writeFileSync(path.join(work, 'built.tar'), await dockerArchive(built, 'localhost/built:2'));
  t.equal(image(store, ['import', path.join(work, 'built.tar')]).stdout, 'localhost/built:2\n');
  t.equal(
    JSON.parse(image(store, ['inspect', 'built:2']).stdout)[0].Config.Labels.from,
    'buildah',
    '"built:2" finds localhost/built:2',
  );
  t.equal(
    image(store, ['ls', '-q']).stdout,
    'docker.io/library/busybox:latest\ndocker.io/library/pod:1\nlocalhost/built:2\nlocalhost/pod:1\n',
  );
});

t.test(
  "OCI layouts: a full ref name is a name, a tag alone is not; containerd's name annotation; NAME@DIGEST",
  async (t) => {
    const work = tempDir(t, 'tsrun-names-oci-');
    const store = path.join(work, 'store');
    const base = baseLayer();

    const full = imageOf([base], { Cmd: ['/bin/sh'], Labels: { n: 'full' } });
    const fullDigest = ociLayout(path.join(work, 'full'), full, 'quay.io/team/app:3');
    t.equal(image(store, ['import', path.join(work, 'full')]).stdout, 'quay.io/team/app:3\n');
    t.ok(found(store, `quay.io/team/app@${fullDigest}`), 'NAME@DIGEST of its manifest');
    const manifest = JSON.parse(image(store, ['inspect', 'quay.io/team/app:3']).stdout)[0].Manifest;
    t.same(
      [manifest.Digest, manifest.schemaVersion, manifest.layers.length],
      [fullDigest, 2, 1],
      'inspect shows the manifest',
    );
    t.notOk(found(store, `quay.io/other/app@${fullDigest}`), 'not under another repository');

    // A registry with a port: RepoDigests keep the whole repository.
    const ported = imageOf([base], { Cmd: ['/bin/sh'], Labels: { n: 'ported' } });
    const portedDigest = ociLayout(path.join(work, 'ported'), ported, 'localhost:5000/team/app:3');
    t.equal(image(store, ['import', path.join(work, 'ported')]).stdout, 'localhost:5000/team/app:3\n');
    t.same(JSON.parse(image(store, ['inspect', 'localhost:5000/team/app:3']).stdout)[0].RepoDigests, [
      `localhost:5000/team/app@${portedDigest}`,
    ]);

    // A name may not pin a digest the image does not have: an archive calling its image "alpine@sha256:<alpine's>".
    const claimed = `sha256:${'a'.repeat(64)}`;
    const hostile = imageOf([base], { Cmd: ['/bin/sh'], Labels: { n: 'hostile' } });
    fs.writeFileSync(path.join(work, 'pinned.tar'), await dockerArchive(hostile, `alpine@${claimed}`));
    const pinned = image(store, ['import', path.join(work, 'pinned.tar')]);
    t.not(pinned.status, 0, 'refused');
    t.match(
      pinned.stderr,
      new RegExp(`the name "docker\\.io/library/alpine@${claimed}": ${claimed} is not this image's digest`),
    );
    t.notOk(found(store, `alpine@${claimed}`), 'nothing answers to that digest');
    t.match(
      image(store, ['tag', 'quay.io/team/app:3', `quay.io/team/app@${claimed}`]).stderr,
      /is not this image's digest/,
      'image tag checks it too',
    );

    const ctr = imageOf([base], { Cmd: ['/bin/sh'], Labels: { n: 'containerd' } });
    ociLayout(path.join(work, 'ctr'), ctr, {
      'org.opencontainers.image.ref.name': '1',
      'io.containerd.image.name': 'docker.io/library/ctr:1',
    });
    t.equal(
      image(store, ['import', path.join(work, 'ctr')]).stdout,
      'docker.io/library/ctr:1\n',
      "containerd's full name, not the bare tag",
    );

    // skopeo copy docker-archive:FILE oci:DIR:2.0, as a user would make a layout.
    const tagged = imageOf([base], { Cmd: ['/bin/sh'], Labels: { n: 'tag-only' } });
    fs.writeFileSync(path.join(work, 'for-skopeo.tar'), await dockerArchive(tagged, 'for/skopeo:x'));
    // skopeo writes its blob-info cache under /var/lib/containers as podman does: taken in turn with the podman tests, removed if new.
    const endTurn = podmanTurn();
    const removeMadePaths = pathsMadeAfter([
      '/var/lib/containers/cache/blob-info-cache-v1.boltdb',
      '/var/lib/containers/cache',
      '/var/lib/containers',
    ]);
    const sk = spawnSync(
      'skopeo',
      [
        'copy',
        '--quiet',
        `docker-archive:${path.join(work, 'for-skopeo.tar')}`,
        `oci:${path.join(work, 'skopeo')}:2.0`,
      ],
      { encoding: 'utf8' },
    );
    removeMadePaths();
    endTurn();
    t.equal(sk.status, 0, `skopeo copy: ${sk.stderr}`);
    const index = JSON.parse(fs.readFileSync(path.join(work, 'skopeo', 'index.json'), 'utf8'));
    t.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], '2.0', 'skopeo wrote the tag alone');
    const bare = image(store, ['import', path.join(work, 'skopeo')]);
    t.equal(bare.status, 0, bare.stderr);
    t.match(bare.stdout, /^sha256:[0-9a-f]{64}\n$/, 'kept under its ID');
    t.match(bare.stderr, /only by the tag "2\.0" .* give --tag NAME:TAG to name it/, 'and says so');
    t.notOk(found(store, '2.0'), 'no image named "2.0:latest"');
    const named = image(store, ['import', '--tag', 'app:2.0', path.join(work, 'skopeo')]);
    t.equal(named.stdout, 'docker.io/library/app:2.0\n', '--tag names it');
    t.ok(found(store, 'app:2.0'));
  },
);

t.test(
  "image ls: docker's table, the image's own creation time and unpacked size; inspect: several refs, docker's shape",
  async (t) => {
    const work = tempDir(t, 'tsrun-names-ls-');
    const store = path.join(work, 'store');
    const created = new Date(Date.now() - 2.5 * 86400_000).toISOString();
    const aged = imageOf([baseLayer()], { Cmd: ['/bin/sh'] }, { created });
    fs.writeFileSync(
      path.join(work, 'aged.tar'),
      await dockerArchive(aged, 'aged:1', (_f, manifest) => {
        manifest[0].RepoTags = ['aged:1', 'aged:latest'];
      }),
    );
    t.equal(image(store, ['import', path.join(work, 'aged.tar')]).status, 0);
    const unnamed = imageOf([baseLayer()], { Cmd: ['/bin/sh'], Labels: { n: 'none' } });
    ociLayout(path.join(work, 'bare'), unnamed, 'v1');
    t.equal(image(store, ['import', path.join(work, 'bare')]).status, 0);
    const ls = image(store, ['ls']);
    t.equal(ls.status, 0, ls.stderr);
    const lines = ls.stdout.trimEnd().split('\n');
    t.match(lines[0], /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$/, 'the header');
    const id = sha256Hex(aged.config).slice(0, 12);
    t.match(
      lines[1],
      new RegExp(`^docker\\.io/library/aged +1 +${id} +2 days ago +\\d+(\\.\\d+)?MB$`),
      "the image config's created, not the import's",
    );
    t.match(lines[2], new RegExp(`^docker\\.io/library/aged +latest +${id} +2 days ago`));
    t.match(
      lines[3],
      new RegExp(`^<none> +<none> +[0-9a-f]{12} +N/A +\\d+(\\.\\d+)?MB$`),
      'an image kept under its ID, with no creation time',
    );
    const inspected = JSON.parse(image(store, ['inspect', 'aged:1', id]).stdout);
    t.equal(inspected.length, 2, 'one entry per ref');
    t.same(inspected[0].RepoTags, ['docker.io/library/aged:1', 'docker.io/library/aged:latest']);
    t.equal(inspected[0].Id, inspected[1].Id);
    t.equal(inspected[0].Created, created);
    t.same(inspected[0].RootFS, { Type: 'layers', Layers: aged.diffIDs });
  },
);

t.test("the README's images quick start: a docker save archive, import, run --image by its short name", async (t) => {
  const work = tempDir(t, 'tsrun-quickstart-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  // What `docker save busybox -o busybox.tar` writes: RepoTags ["busybox:latest"].
  fs.writeFileSync(
    path.join(work, 'busybox.tar'),
    await dockerArchive(imageOf([baseLayer()], { Cmd: ['sh'], Env: ['PATH=/bin'] }), 'busybox:latest'),
  );
  const imported = runCommand([TSRUN, '--store', store, 'image', 'import', path.join(work, 'busybox.tar')]);
  t.equal(imported.stdout, 'docker.io/library/busybox:latest\n', imported.stderr);
  t.teardown(() => {
    runCommand([TSRUN, '--root', root, 'delete', '--force', 'demo']);
  });
  const run = runCommand([
    TSRUN,
    '--root',
    root,
    '--store',
    store,
    'run',
    '--image',
    'busybox',
    'demo',
    '--',
    'echo',
    'hello',
  ]);
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stdout, 'hello\n');
});
