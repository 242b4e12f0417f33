/**
 * `tsrun image push`: images of the store (imported from a docker-archive
 * or an OCI layout, or pulled) pushed to a real docker-registry and read
 * back by skopeo and by tsrun's own pull.  Blobs the repository has are
 * skipped (HEAD), blobs of the repository an image was pulled from are
 * mounted (no upload), an OCI layout's manifest goes byte for byte (its
 * digest kept); the registry's access log says which requests were made.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { sha256 } from '../../src/lib/image/store';
import { cleanupContainer, IS_ROOT, tarOf, tempDir, tsrun, uniqueId } from '../helpers';
import { baseLayer, dockerArchive, image, imageOf, ociLayout } from '../image-helpers';
import { haveRegistry, logSettled, type Registry, startRegistry } from '../registry-helpers';

if (!IS_ROOT || !haveRegistry()) {
  t.plan(0, IS_ROOT ? 'docker-registry and skopeo are not installed (scripts/setup.sh --engines)' : 'needs root');
  process.exit(0);
}

const root = tempDir(t, 'tsrun-push-root-');
let reg: Registry;
t.before(async () => {
  reg = await startRegistry(t);
});

const since = (n: number) => reg.requests().slice(n);
const blobUploads = (reqs: Array<{ method: string; path: string }>) =>
  reqs.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));

/** What skopeo reads back: the manifest's digest and the config's. */
function skopeoInspect(ref: string): { Digest: string; raw: { config: { digest: string }; layers: unknown[] } } {
  const r = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' });
  const raw = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' });
  if (r.status !== 0 || raw.status !== 0) throw new Error(`skopeo inspect ${ref}: ${r.stderr}${raw.stderr}`);
  return { ...JSON.parse(r.stdout), raw: JSON.parse(raw.stdout) };
}

t.test('an imported docker-archive: pushed, read back by skopeo, pulled and run by tsrun', async (t) => {
  const store = tempDir(t, 'tsrun-push-store-');
  const top = await tarOf([{ name: 'hello.txt', type: 'file', mode: 0o644, uid: 0, gid: 0, content: 'pushed\n' }]);
  const img = imageOf([baseLayer(), top], { Cmd: ['cat', '/hello.txt'] });
  const archive = path.join(store, '..', `${path.basename(store)}.tar`);
  fs.writeFileSync(archive, await dockerArchive(img, 'hello:1'));
  t.teardown(() => fs.rmSync(archive, { force: true }));
  t.equal(image(store, ['import', archive]).status, 0);

  const before = reg.requests().length;
  const r = image(store, ['push', 'hello:1', `${reg.host}/hello:1`]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^${reg.host}/hello:1@sha256:[0-9a-f]{64}\\n$`));
  const pushedDigest = r.stdout.trim().split('@')[1];
  await logSettled(reg);
  t.equal(blobUploads(since(before)).length, 3, 'two layers and the config uploaded');
  const back = skopeoInspect(`${reg.host}/hello:1`);
  t.equal(back.Digest, pushedDigest, 'skopeo reads the manifest tsrun reported');
  t.equal(back.raw.config.digest, sha256(img.config), 'the same image config');
  t.equal(back.raw.layers.length, 2);

  // Again: the repository has everything; only HEADs and the manifest.
  const again = reg.requests().length;
  t.equal(image(store, ['push', 'hello:1', `${reg.host}/hello:1`]).status, 0);
  await logSettled(reg);
  t.same(
    since(again).map((q) => `${q.method} ${q.status}`),
    ['GET 200', 'HEAD 200', 'HEAD 200', 'HEAD 200', 'PUT 201'],
    'the /v2/ ping, three HEADs the repository answers 200, then the manifest',
  );

  // tsrun pulls it into an empty store and runs it.
  const fresh = tempDir(t, 'tsrun-push-store-');
  const id = uniqueId('push');
  t.teardown(() => cleanupContainer(t, root, id));
  const run = tsrun(root, ['run', '--store', fresh, '--image', `${reg.host}/hello:1`, id]);
  t.equal(run.stdout, 'pushed\n', run.stderr);
});

t.test(
  'an OCI layout: its manifest pushed byte for byte; a pulled image mounted into another repository',
  async (t) => {
    const store = tempDir(t, 'tsrun-push-store-');
    const dir = tempDir(t, 'tsrun-push-layout-');
    const manifestDigest = ociLayout(dir, imageOf([baseLayer()]), 'docker.io/library/layout:1');
    t.equal(image(store, ['import', dir]).status, 0);
    const r = image(store, ['push', 'layout:1', `${reg.host}/layout:1`]);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, `${reg.host}/layout:1@${manifestDigest}\n`, "the layout's manifest digest");

    // Pulled from layout, pushed to mounted: the registry links the blobs, nothing is uploaded.
    const pulled = tempDir(t, 'tsrun-push-store-');
    t.equal(image(pulled, ['pull', `${reg.host}/layout:1`]).status, 0);
    const before = reg.requests().length;
    const m = image(pulled, ['push', `${reg.host}/layout:1`, `${reg.host}/mounted:2`]);
    t.equal(m.status, 0, m.stderr);
    await logSettled(reg);
    const reqs = since(before);
    t.equal(blobUploads(reqs).length, 0, 'no blob uploaded');
    t.equal(
      reqs.filter(
        (q) => q.method === 'POST' && /[?&]mount=sha256%3A[0-9a-f]{64}&from=layout$/.test(q.path) && q.status === 201,
      ).length,
      2,
      'the layer and the config mounted from layout',
    );
    t.equal(skopeoInspect(`${reg.host}/mounted:2`).Digest, manifestDigest);
  },
);

t.test('errors: one line, nothing sent', async (t) => {
  const store = tempDir(t, 'tsrun-push-store-');
  const dir = tempDir(t, 'tsrun-push-layout-');
  ociLayout(dir, imageOf([baseLayer()]), 'docker.io/library/e:1');
  t.equal(image(store, ['import', dir]).status, 0);
  const before = reg.requests().length;
  const cases: Array<[string[], RegExp]> = [
    [['push', 'e:1', `${reg.host}/x@sha256:${'1'.repeat(64)}`], /a destination is a tag, not a digest\n$/],
    [['push', 'nosuch:1', `${reg.host}/x:1`], /image "nosuch:1" is not in the store/],
    [['push', 'e:1', '127.0.0.1:1/x:1'], /^tsrun: image push: registry 127\.0\.0\.1:1: connection refused\n$/],
    [['push', 'e:1', `${reg.host}/x:1`, '--tls-verify=no'], /--tls-verify "no": true or false/],
  ];
  for (const [args, want] of cases) {
    const r = image(store, args);
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, want, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  await logSettled(reg);
  t.same(since(before), [], 'the registry was not asked');
});
