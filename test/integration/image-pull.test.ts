/**
 * `tsrun image pull` and `run --image` from a registry: a real
 * docker-registry on 127.0.0.1 (test/registry-helpers.ts), images put
 * there by skopeo from OCI layouts built from the busybox fixture.  By
 * tag and by digest; a multi-platform index; layers shared between images
 * fetched once (the registry's access log counts the requests); a download
 * broken half-way taken up again with Range; a corrupted blob, and a
 * registry sending more than a blob's size, refused with the store as it
 * was; the errors a user meets (no such repository, tag, registry,
 * platform, bad flags); concurrent pulls of images sharing layers; a
 * 100-layer image.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import t from 'tap';
import { sha256 } from '../../src/lib/image/store';
import { cleanupContainer, IS_ROOT, tarOf, tempDir, TSRUN, tsrun, tsrunAsync, uniqueId } from '../helpers';
import { onTty } from '../engine-helpers';
import {
  baseLayer,
  hex,
  image,
  imageOf,
  multiPlatformLayout,
  ociLayout,
  storeSnapshot,
  type TestImage,
} from '../image-helpers';
import {
  haveRegistry,
  logSettled,
  registryBlobFile,
  type Registry,
  skopeoPush,
  startRegistry,
} from '../registry-helpers';

if (!IS_ROOT || !haveRegistry()) {
  t.plan(0, IS_ROOT ? 'docker-registry and skopeo are not installed (scripts/setup.sh --engines)' : 'needs root');
  process.exit(0);
}

const root = tempDir(t, 'tsrun-pull-root-');
let reg: Registry;
let base: TestImage;
let baseDigest: string;
const work = tempDir(t, 'tsrun-pull-');

/** A layer adding one file. */
async function fileLayer(name: string, content: string): Promise<Buffer> {
  return tarOf([{ name, type: 'file', mode: 0o644, uid: 0, gid: 0, content }]);
}

/** Push `img` as REPO:TAG; the manifest's digest. */
function push(img: TestImage, repoTag: string): string {
  const dir = path.join(work, `layout-${uniqueId()}`);
  const digest = ociLayout(dir, img, 'x');
  skopeoPush(dir, 'x', `${reg.host}/${repoTag}`);
  return digest;
}

const blobGets = (): string[] =>
  reg
    .requests()
    .filter((r) => r.method === 'GET' && r.path.includes('/blobs/'))
    .map((r) => r.path);

t.before(async () => {
  reg = await startRegistry(t);
  base = imageOf([baseLayer()], { Cmd: ['/bin/sh'] });
  baseDigest = push(base, 'busybox:latest');
});

t.test('run --image from an empty store: pulled, then run, in one command', async (t) => {
  const store = tempDir(t, 'tsrun-pull-store-');
  fs.rmdirSync(store); // not there at all
  const id = uniqueId('pull');
  t.teardown(() => cleanupContainer(t, root, id));
  const r = tsrun(root, [
    'run',
    '--store',
    store,
    '--image',
    `${reg.host}/busybox:latest`,
    id,
    '--',
    'sh',
    '-c',
    'echo ran; cat /etc/hostname >/dev/null; ls /bin/busybox',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'ran\n/bin/busybox\n', "the container's output, and nothing of the pull's on stdout");
  const images = JSON.parse(fs.readFileSync(path.join(store, 'images.json'), 'utf8'));
  const rec = images[`${reg.host}/busybox:latest`];
  t.match(rec, {
    config: sha256(base.config),
    manifest: baseDigest,
    layers: base.diffIDs,
    source: `${reg.host}/busybox`,
  });
  t.equal(rec.layerBlobs.length, 1);
  t.ok(
    fs.existsSync(path.join(store, 'blobs/sha256', hex(rec.layerBlobs[0].digest))),
    'the layer blob as served is kept (for a push)',
  );
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'nothing left in tmp/');
  // Again: the image is there, nothing is fetched (--pull missing).
  await logSettled(reg);
  const before = reg.requests().length;
  const again = tsrun(root, ['run', '--store', store, '--image', `${reg.host}/busybox`, id, '--', 'true']);
  t.equal(again.status, 0, again.stderr);
  await logSettled(reg);
  t.equal(reg.requests().length, before, 'no request when the image is in the store');
  // --pull always asks for the manifest, and downloads nothing it has.
  await logSettled(reg);
  const blobsBefore = blobGets().length;
  const always = tsrun(root, [
    'run',
    '--store',
    store,
    '--pull',
    'always',
    '--image',
    `${reg.host}/busybox`,
    id,
    '--',
    'true',
  ]);
  t.equal(always.status, 0, always.stderr);
  await logSettled(reg);
  t.ok(reg.requests().length > before, 'the registry was asked');
  t.equal(blobGets().length, blobsBefore + 1, 'only the config fetched again, no layer');
});

t.test('image pull by tag and by digest; the digest names the image too', async (t) => {
  const store = tempDir(t, 'tsrun-pull-store-');
  const byTag = image(store, ['pull', `${reg.host}/busybox`]);
  t.equal(byTag.status, 0, byTag.stderr);
  t.equal(byTag.stdout, `${reg.host}/busybox:latest\n`);
  t.equal(byTag.stderr, '', 'no display when stderr is not a terminal');
  const byDigest = image(store, ['pull', `${reg.host}/busybox@${baseDigest}`]);
  t.equal(byDigest.status, 0, byDigest.stderr);
  t.equal(byDigest.stdout, `${reg.host}/busybox@${baseDigest}\n`);
  const inspect = JSON.parse(image(store, ['inspect', `${reg.host}/busybox@${baseDigest}`]).stdout);
  t.same(inspect[0].RepoDigests, [`${reg.host}/busybox@${baseDigest}`]);
  t.equal(fs.readdirSync(path.join(store, 'layers')).length, 1, 'one layer for both names');
  const wrong = image(store, ['pull', `${reg.host}/busybox@sha256:${'0'.repeat(64)}`]);
  t.not(wrong.status, 0);
  t.match(wrong.stderr, `${reg.host}/busybox: manifest sha256:${'0'.repeat(64)} not found`);
});

t.test('layers already in the store are not downloaded again', async (t) => {
  const store = tempDir(t, 'tsrun-pull-store-');
  const app = imageOf([baseLayer(), await fileLayer('app.txt', 'app\n')], { Cmd: ['cat', '/app.txt'] });
  push(app, 'app:1');
  t.equal(image(store, ['pull', `${reg.host}/busybox`]).status, 0);
  await logSettled(reg);
  const before = blobGets();
  const r = image(store, ['pull', `${reg.host}/app:1`]);
  t.equal(r.status, 0, r.stderr);
  await logSettled(reg);
  const fetched = blobGets().slice(before.length);
  const baseBlob = reg
    .requests()
    .find((q) => q.method === 'GET' && q.path.includes('busybox/blobs/') && !q.path.endsWith(hex(sha256(base.config))));
  t.ok(baseBlob, 'the base layer was fetched for busybox');
  t.equal(fetched.length, 2, "app's config and its own layer, not the base layer");
  t.notOk(
    fetched.some((p) => p.endsWith(baseBlob!.path.split(':').pop()!)),
    'the base blob is not among them',
  );
  const id = uniqueId('pull');
  t.teardown(() => cleanupContainer(t, root, id));
  const run = tsrun(root, ['run', '--store', store, '--image', `${reg.host}/app:1`, id]);
  t.equal(run.stdout, 'app\n', run.stderr);
});

t.test("a multi-platform index: this machine's image, or the one --platform names", async (t) => {
  const amd64 = imageOf(
    [baseLayer(), await fileLayer('arch', 'amd64\n')],
    { Cmd: ['cat', '/arch'] },
    { architecture: 'amd64' },
  );
  const arm64 = imageOf(
    [baseLayer(), await fileLayer('arch', 'arm64\n')],
    { Cmd: ['cat', '/arch'] },
    { architecture: 'arm64', variant: 'v8' },
  );
  const dir = path.join(work, 'multi');
  const indexDigest = multiPlatformLayout(dir, 'multi', [
    { img: arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { img: amd64, platform: { os: 'linux', architecture: 'amd64' } },
  ]);
  skopeoPush(dir, 'multi', `${reg.host}/multi:1`, { all: true });
  const store = tempDir(t, 'tsrun-pull-store-');
  const r = image(store, ['pull', `${reg.host}/multi:1`]);
  t.equal(r.status, 0, r.stderr);
  const rec = () => JSON.parse(fs.readFileSync(path.join(store, 'images.json'), 'utf8'))[`${reg.host}/multi:1`];
  t.match(
    rec(),
    { config: sha256(amd64.config), index: indexDigest },
    "this machine's (amd64) image, the index recorded",
  );
  const id = uniqueId('pull');
  t.teardown(() => cleanupContainer(t, root, id));
  t.equal(tsrun(root, ['run', '--store', store, '--image', `${reg.host}/multi:1`, id]).stdout, 'amd64\n');
  t.equal(
    tsrun(root, ['run', '--store', store, '--image', `${reg.host}/multi@${indexDigest}`, '--pull', 'never', id]).stdout,
    'amd64\n',
    'found by the index digest',
  );
  const arm = image(store, ['pull', '--platform', 'linux/arm64', `${reg.host}/multi:1`]);
  t.equal(arm.status, 0, arm.stderr);
  t.match(rec(), { config: sha256(arm64.config), index: indexDigest });
  const none = image(store, ['pull', '--platform', 'linux/s390x', `${reg.host}/multi:1`]);
  t.not(none.status, 0);
  t.match(
    none.stderr,
    /no image for linux\/s390x \(it has linux\/arm64\/v8, linux\/amd64\); --platform chooses another/,
  );
});

t.test("Docker's schema 2: a manifest and a manifest list, as docker push writes them", async (t) => {
  const amd64 = imageOf([baseLayer(), await fileLayer('arch', 'amd64\n')], { Cmd: ['cat', '/arch'] });
  const arm64 = imageOf(
    [baseLayer(), await fileLayer('arch', 'arm64\n')],
    { Cmd: ['cat', '/arch'] },
    {
      architecture: 'arm64',
    },
  );
  const dir = path.join(work, 'docker-multi');
  multiPlatformLayout(dir, 'multi', [
    { img: amd64, platform: { os: 'linux', architecture: 'amd64' } },
    { img: arm64, platform: { os: 'linux', architecture: 'arm64' } },
  ]);
  skopeoPush(dir, 'multi', `${reg.host}/docker-list:1`, { all: true, docker: true });
  const single = path.join(work, 'docker-single');
  ociLayout(single, amd64, 'x');
  skopeoPush(single, 'x', `${reg.host}/docker-single:1`, { docker: true });
  const store = tempDir(t, 'tsrun-pull-store-');
  for (const [name, want] of [
    [`${reg.host}/docker-single:1`, 'application/vnd.docker.distribution.manifest.v2+json'],
    [`${reg.host}/docker-list:1`, 'application/vnd.docker.distribution.manifest.v2+json'],
  ]) {
    const r = image(store, ['pull', name]);
    t.equal(r.status, 0, r.stderr);
    const rec = JSON.parse(fs.readFileSync(path.join(store, 'images.json'), 'utf8'))[name];
    t.equal(
      JSON.parse(fs.readFileSync(path.join(store, 'blobs/sha256', hex(rec.manifest)), 'utf8')).mediaType,
      want,
      name,
    );
    t.match(
      rec.layerBlobs,
      [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
      "docker's layer type",
    );
    t.equal(rec.config, sha256(amd64.config), "this machine's image");
  }
  const list = JSON.parse(fs.readFileSync(path.join(store, 'images.json'), 'utf8'))[`${reg.host}/docker-list:1`];
  t.equal(
    JSON.parse(fs.readFileSync(path.join(store, 'blobs/sha256', hex(list.index)), 'utf8')).mediaType,
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'pulled through a manifest list',
  );
  const id = uniqueId('pull');
  t.teardown(() => cleanupContainer(t, root, id));
  t.equal(tsrun(root, ['run', '--store', store, '--image', `${reg.host}/docker-list:1`, id]).stdout, 'amd64\n');
});

t.test('bundle pulls a missing image too, and writes the bundle from it', async (t) => {
  const store = tempDir(t, 'tsrun-pull-store-');
  const bundle = path.join(tempDir(t, 'tsrun-pull-bundle-'), 'b');
  const r = tsrun(root, ['bundle', '--store', store, `${reg.host}/busybox`, bundle]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '', 'nothing on stdout');
  const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  t.equal(config.annotations['org.tsrun.image.id'], sha256(base.config));
  t.same(config.process.args, ['/bin/sh']);
  const never = tsrun(root, [
    'bundle',
    '--store',
    tempDir(t, 'tsrun-pull-store-'),
    '--pull',
    'never',
    `${reg.host}/busybox`,
    `${bundle}2`,
  ]);
  t.not(never.status, 0);
  t.notOk(fs.existsSync(`${bundle}2`), 'no bundle');
});

t.test('a corrupted blob is refused, and the store is as it was', async (t) => {
  const bad = imageOf([baseLayer(), await fileLayer('bad', 'x'.repeat(5000))]);
  const dir = path.join(work, 'bad');
  ociLayout(dir, bad, 'x');
  skopeoPush(dir, 'x', `${reg.host}/corrupt:1`);
  const manifest = JSON.parse(
    fs.readFileSync(
      path.join(
        dir,
        'blobs/sha256',
        hex(JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')).manifests[0].digest),
      ),
      'utf8',
    ),
  );
  const layer = manifest.layers[1];
  const file = registryBlobFile(reg, layer.digest);
  const data = fs.readFileSync(file);
  data[data.length - 20] ^= 0xff; // same size, other bytes
  fs.writeFileSync(file, data);
  const store = tempDir(t, 'tsrun-pull-store-');
  t.equal(image(store, ['pull', `${reg.host}/busybox`]).status, 0);
  const before = storeSnapshot(store);
  const r = image(store, ['pull', `${reg.host}/corrupt:1`]);
  t.not(r.status, 0);
  t.match(
    r.stderr,
    `tsrun: image pull: ${reg.host}/corrupt: blob ${layer.digest}: digest mismatch: the content is sha256:`,
  );
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.equal(storeSnapshot(store), before, 'the store as it was');
  // From an empty store: no store is left behind.
  const fresh = path.join(tempDir(t, 'tsrun-pull-'), 'store');
  t.not(image(fresh, ['pull', `${reg.host}/corrupt:1`]).status, 0);
  t.notOk(fs.existsSync(fresh), 'the store this pull made is gone again');
});

/**
 * A proxy in front of the registry: `mangle` sees each blob response and
 * may cut it (end the connection after N bytes) or add bytes.  Requests'
 * Range headers are recorded.
 */
async function proxy(
  t: { teardown(fn: () => void): void },
  mangle: (req: http.IncomingMessage, nth: number) => { cutAfter?: number; extra?: Buffer } | undefined,
): Promise<{ host: string; ranges: string[] }> {
  const ranges: string[] = [];
  let blobRequests = 0;
  const server = http.createServer((req, res) => {
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob) ranges.push(String(req.headers.range ?? ''));
    const how = isBlob ? mangle(req, blobRequests++) : undefined;
    const [hostname, port] = reg.host.split(':');
    const up = http.request({ hostname, port, path: req.url, method: req.method, headers: req.headers }, (upRes) => {
      const headers = { ...upRes.headers };
      if (how?.extra) delete headers['content-length']; // chunked, so the extra bytes are part of the body
      res.writeHead(upRes.statusCode ?? 502, headers);
      let sent = 0;
      upRes.on('data', (chunk: Buffer) => {
        if (how?.cutAfter !== undefined && sent + chunk.length > how.cutAfter) {
          res.write(chunk.subarray(0, how.cutAfter - sent));
          res.socket?.destroy();
          upRes.destroy();
          return;
        }
        sent += chunk.length;
        res.write(chunk);
      });
      upRes.on('end', () => {
        res.end(how?.extra); // what a hostile registry may send past the blob
      });
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return { host: `127.0.0.1:${(server.address() as { port: number }).port}`, ranges };
}

t.test('a download broken half-way goes on where it stopped (Range)', async (t) => {
  const big = imageOf([baseLayer()]);
  const { host, ranges } = await proxy(t, (req, nth) => (nth === 1 ? { cutAfter: 300_000 } : undefined));
  // Through the proxy: the proxy's host is the registry's name here.
  const dir = path.join(work, 'range');
  ociLayout(dir, big, 'x');
  skopeoPush(dir, 'x', `${reg.host}/range:1`);
  const store = tempDir(t, 'tsrun-pull-store-');
  const r = await tsrunAsync(root, ['image', 'pull', '--store', store, `${host}/range:1`]);
  t.equal(r.status, 0, r.stderr);
  t.same(ranges.slice(0, 2), ['', ''], 'the config, then the layer');
  const from = Number(/^bytes=(\d+)-$/.exec(ranges[2] ?? '')?.[1]);
  t.ok(from > 0 && from <= 300_000, `then the rest, from what had come before the cut (${ranges[2]})`);
  t.equal(ranges.length, 3, 'and nothing more');
  t.equal(fs.readdirSync(path.join(store, 'layers')).length, 1);
});

t.test("a registry sending more than a blob's size is refused", async (t) => {
  const { host } = await proxy(t, (req, nth) => (nth === 1 ? { extra: Buffer.alloc(4096, 1) } : undefined));
  const store = tempDir(t, 'tsrun-pull-store-');
  const r = await tsrunAsync(root, ['image', 'pull', '--store', store, `${host}/range:1`]);
  t.not(r.status, 0);
  t.match(r.stderr, /: blob sha256:[0-9a-f]{64}: more than the \d+ bytes its descriptor says\n$/);
  t.same(fs.readdirSync(path.join(store, 'layers')), [], 'no layer');
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'nothing in tmp/');
});

t.test('errors: what is wrong, one line, nothing left', async (t) => {
  const store = tempDir(t, 'tsrun-pull-store-');
  fs.rmdirSync(store);
  const cases: Array<[string[], RegExp]> = [
    [
      ['pull', `${reg.host}/nosuch`],
      new RegExp(`^tsrun: image pull: ${reg.host}/nosuch: repository not found in registry ${reg.host}\\n$`),
    ],
    [
      ['pull', `${reg.host}/busybox:nosuch`],
      new RegExp(`^tsrun: image pull: ${reg.host}/busybox: tag "nosuch" not found\\n$`),
    ],
    [['pull', '127.0.0.1:1/busybox'], /^tsrun: image pull: registry 127\.0\.0\.1:1: connection refused\n$/],
    [
      ['pull', '--platform', 'linux/amd64/v1/x', `${reg.host}/busybox`],
      /^tsrun: image pull: --platform "linux\/amd64\/v1\/x": expected OS\/ARCH\[\/VARIANT\], such as linux\/amd64\n$/,
    ],
    [
      ['pull', '--platform', 'windows/amd64', `${reg.host}/busybox`],
      /^tsrun: image pull: --platform "windows\/amd64": tsrun runs linux images only\n$/,
    ],
    [
      ['pull', '--tls-verify=maybe', `${reg.host}/busybox`],
      /^tsrun: image pull: --tls-verify "maybe": true or false\n$/,
    ],
    [['pull', `${reg.host}/Bad`], /is not valid/],
  ];
  for (const [args, want] of cases) {
    const r = image(store, args);
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, want, args.join(' '));
  }
  t.notOk(fs.existsSync(store), 'no store made');
  const id = uniqueId('pull');
  const never = tsrun(root, ['run', '--store', store, '--pull', 'never', '--image', `${reg.host}/busybox`, id]);
  t.not(never.status, 0);
  t.match(never.stderr, 'is not in the store');
  const policy = tsrun(root, ['run', '--store', store, '--pull', 'sometimes', '--image', `${reg.host}/busybox`, id]);
  t.match(policy.stderr, '--pull "sometimes": missing, always or never');
  // A registry flag without --image would mean nothing: refused, never ignored.
  for (const [flag, value] of [
    ['--pull', 'always'],
    ['--platform', 'linux/arm64'],
    ['--tls-verify', 'false'],
    ['--cert-dir', '/tmp'],
    ['--authfile', '/tmp/auth.json'],
    ['--creds', 'a:b'],
  ]) {
    const stray = tsrun(root, ['run', flag, value, id]);
    t.not(stray.status, 0, flag);
    t.match(stray.stderr, `${flag}: only with --image`, flag);
  }
  t.notOk(fs.existsSync(path.join(root, id)), 'no container state');
});

t.test('concurrent pulls of images sharing layers', async (t) => {
  const store = tempDir(t, 'tsrun-pull-store-');
  const images = await Promise.all(
    [1, 2, 3].map(async (n) => {
      const img = imageOf([baseLayer(), await fileLayer(`n${n}`, `${n}\n`)], { Cmd: ['cat', `/n${n}`] });
      push(img, `shared${n}:1`);
      return img;
    }),
  );
  const results = await Promise.all(
    [1, 2, 3].map((n) => tsrunAsync(root, ['image', 'pull', '--store', store, `${reg.host}/shared${n}:1`])),
  );
  for (const r of results) t.equal(r.status, 0, r.stderr);
  const layers = fs.readdirSync(path.join(store, 'layers')).sort();
  t.same(layers, [...new Set(images.flatMap((i) => i.diffIDs))].map(hex).sort(), 'each layer once');
  t.same(fs.readdirSync(path.join(store, 'tmp')), []);
});

t.test('a 100-layer image', async (t) => {
  const layers = [
    baseLayer(),
    ...(await Promise.all(Array.from({ length: 99 }, (_, i) => fileLayer(`f${i}`, `${i}\n`)))),
  ];
  const img = imageOf(layers, { Cmd: ['sh', '-c', 'cat /f0 /f50 /f98; ls / | grep -c "^f[0-9]"'] });
  push(img, 'deep:1');
  const store = tempDir(t, 'tsrun-pull-store-');
  const id = uniqueId('pull');
  t.teardown(() => cleanupContainer(t, root, id));
  const r = tsrun(root, ['run', '--store', store, '--image', `${reg.host}/deep:1`, id], { timeoutMs: 180_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '0\n50\n98\n99\n');
});

t.test(
  "the pull display on a terminal: docker's lines, each layer and the total, within the terminal's width",
  async (t) => {
    const img = imageOf([baseLayer(), await fileLayer('a', 'a\n'), await fileLayer('b', 'b\n')], {
      Cmd: ['cat', '/a', '/b'],
    });
    push(img, 'shown:1');
    const store = tempDir(t, 'tsrun-pull-store-');
    const id = uniqueId('pull');
    t.teardown(() => cleanupContainer(t, root, id));
    const r = onTty([
      'sh',
      '-c',
      `stty cols 60 rows 12; exec '${TSRUN}' --root '${root}' run --store '${store}' --image '${reg.host}/shown:1' ${id}`,
    ]);
    t.equal(r.status, 0, r.stdout);
    const text = r.stdout.replace(/\r/g, '');
    const manifest = JSON.parse(fs.readFileSync(path.join(store, 'images.json'), 'utf8'))[`${reg.host}/shown:1`];
    for (const blob of manifest.layerBlobs as Array<{ digest: string }>)
      t.match(
        text,
        `${blob.digest.slice(7, 19)}: Pull complete`,
        `layer ${blob.digest.slice(7, 19)} is shown complete`,
      );
    t.match(text, `${reg.host}/shown:1: 3/3 layers`, 'the total line');
    // Each redraw moves up over the lines it drew and clears below; no line is as wide as the terminal.
    const lines = text.split(/\x1b\[\d+A|\x1b\[J|\n/).filter(Boolean);
    t.ok(
      lines.every((l) => l.length < 60),
      `every line fits in 60 columns: ${lines.filter((l) => l.length >= 60)}`,
    );
    t.match(text, /a\nb\n$/, "then the container's output");
  },
);
