/**
 * Issue 17, the image CLI as a docker user reaches for it: the store given
 * once (a global --store, `image --store`, or $TSRUN_STORE), an archive
 * piped in with `import -`, `tag`, `history`, `rm -f` of an image a
 * container uses, and `prune` of images kept under their ID alone.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { cleanupContainer, IS_ROOT, runCommand, tarOf, tempDir, TSRUN, tsrun, uniqueId } from '../helpers';
import { onTty } from '../engine-helpers';
import { baseLayer, dockerArchive, imageOf, ociLayout } from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'image tests need root');
  process.exit(0);
}

t.test(
  'the store given once: --store before the verb, after image, or $TSRUN_STORE; import - reads stdin',
  async (t) => {
    const work = tempDir(t, 'tsrun-imgcli-');
    const store = path.join(work, 'store');
    const img = imageOf(
      [baseLayer()],
      { Cmd: ['/bin/sh'] },
      {
        created: '2020-01-02T03:04:05Z',
        history: [
          { created: '2020-01-02T03:04:05Z', created_by: 'ADD rootfs /' },
          { created: '2020-01-02T03:04:06Z', created_by: 'CMD ["/bin/sh"]', empty_layer: true },
        ],
      },
    );
    fs.writeFileSync(path.join(work, 'a.tar'), await dockerArchive(img, 'piped:1'));
    const root = path.join(work, 'state');
    const imported = runCommand([
      'sh',
      '-c',
      `'${TSRUN}' --store '${store}' image import - < '${path.join(work, 'a.tar')}'`,
    ]);
    t.equal(imported.status, 0, imported.stderr);
    t.equal(imported.stdout, 'docker.io/library/piped:1\n', 'import - took the archive from stdin');
    t.match(
      tsrun(root, ['image', '--store', store, 'ls']).stdout,
      /^docker\.io\/library\/piped +1 /m,
      'image --store DIR ls',
    );
    t.match(
      runCommand([TSRUN, 'image', 'ls'], { env: { TSRUN_STORE: store } }).stdout,
      /^docker\.io\/library\/piped +1 /m,
      '$TSRUN_STORE',
    );
    t.equal(
      tsrun(root, ['--store', store, 'image', 'tag', 'piped:1', 'quay.io/me/other:2']).stdout,
      'quay.io/me/other:2\n',
      'tag',
    );
    t.equal(
      tsrun(root, ['--store', store, 'image', 'ls', '-q']).stdout,
      'docker.io/library/piped:1\nquay.io/me/other:2\n',
    );
    const history = tsrun(root, ['--store', store, 'image', 'history', 'quay.io/me/other:2'])
      .stdout.trimEnd()
      .split('\n');
    t.match(history[0], /^IMAGE +CREATED +CREATED BY +SIZE +COMMENT$/);
    t.match(history[1], /^[0-9a-f]{12} +\d+ years ago +CMD \["\/bin\/sh"\] +0B$/, 'newest first, an empty layer of 0B');
    t.match(history[2], /^<missing> +\d+ years ago +ADD rootfs \/ +\d+(\.\d+)?MB$/, 'the layer it made, unpacked');
    // A global --store reaches run --image too.
    const id = uniqueId('gstore');
    cleanupContainer(t, root, id);
    const run = tsrun(root, [
      '--store',
      store,
      'run',
      '--image',
      'piped:1',
      id,
      '--',
      '/bin/echo',
      'from the global store',
    ]);
    t.equal(run.stdout, 'from the global store\n', run.stderr);
    t.equal(
      tsrun(root, ['--store', store, 'image', 'ls', '--store', path.join(work, 'empty'), '-q']).stdout,
      '',
      'the nearest --store wins',
    );
    // create/run's own --store means something only with --image; --tty=false means nothing anyway.
    t.match(tsrun(root, ['run', '--store', store, '-b', work, 'nostore']).stderr, /--store: only with --image/);
    t.notMatch(
      tsrun(root, ['run', '--tty=false', '-b', work, 'notty']).stderr,
      /only with --image/,
      '--tty=false is no stray image flag',
    );
  },
);

t.test('rm -f takes the last name of an image a container uses; prune takes ID-only images nothing uses', async (t) => {
  const work = tempDir(t, 'tsrun-imgcli-rm-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const img = imageOf([baseLayer()], { Cmd: ['/bin/sh'] });
  fs.writeFileSync(path.join(work, 'a.tar'), await dockerArchive(img, 'used:1'));
  t.equal(tsrun(root, ['--store', store, 'image', 'import', path.join(work, 'a.tar')]).status, 0);
  const id = uniqueId('rmf');
  cleanupContainer(t, root, id);
  t.equal(tsrun(root, ['--store', store, 'run', '-d', '--image', 'used:1', id, '--', '/bin/sleep', '1000']).status, 0);
  const refused = tsrun(root, ['--store', store, 'image', 'rm', 'used:1']);
  t.match(refused.stderr, /is in use by container "rmf-[\d-]+"; delete it first, or give -f/);
  t.equal(tsrun(root, ['--store', store, 'image', 'rm', '-f', 'used:1']).status, 0, 'rm -f');
  t.equal(tsrun(root, ['--store', store, 'image', 'ls', '-q']).stdout, '', 'the name is gone');
  t.equal(tsrun(root, ['exec', id, '/bin/true']).status, 0, 'the container runs on');
  t.equal(tsrun(root, ['delete', '--force', id]).status, 0);
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'its upper went with it');
  t.equal(tsrun(root, ['--store', store, 'image', 'gc']).status, 0);
  t.same(fs.readdirSync(path.join(store, 'layers')), [], 'and its layers with gc, nothing naming them');

  const unnamed = imageOf([baseLayer()], { Cmd: ['/bin/sh'], Labels: { n: 'dangling' } });
  ociLayout(path.join(work, 'bare'), unnamed, 'v1');
  t.match(tsrun(root, ['--store', store, 'image', 'import', path.join(work, 'bare')]).stdout, /^sha256:/);
  const pruned = tsrun(root, ['--store', store, 'image', 'prune']);
  t.equal(pruned.status, 0, pruned.stderr);
  t.match(pruned.stdout, /^sha256:[0-9a-f]{64}\n/, 'prune names the image it took');
  t.same(fs.readdirSync(path.join(store, 'layers')), [], 'and its layer');
});

t.test('the progress bar on a 40-column terminal: each redraw fits, at most ten a second', async (t) => {
  const work = tempDir(t, 'tsrun-imgcli-tty-');
  const store = path.join(work, 'store');
  // 24 MB that does not compress: the archive phase reads it in some 400 chunks.
  const noise = await tarOf([{ name: 'noise', type: 'file', content: crypto.randomBytes(24 << 20) }]);
  fs.writeFileSync(
    path.join(work, 'big.tar'),
    await dockerArchive(imageOf([baseLayer(), noise], { Cmd: ['/bin/sh'] }), 'big:1'),
  );
  const started = Date.now();
  const r = onTty([
    'sh',
    '-c',
    `stty cols 40 rows 20; exec '${TSRUN}' --store '${store}' image import '${path.join(work, 'big.tar')}'`,
  ]);
  const seconds = (Date.now() - started) / 1000;
  t.equal(r.status, 0, r.stderr);
  const redraws = r.stdout.split('\r').filter((s) => s.startsWith('\x1b[K'));
  t.ok(redraws.length >= 1, `the bar was drawn (${redraws.length} times in ${seconds.toFixed(1)} s)`);
  t.ok(
    redraws.length <= Math.ceil(seconds * 10) + 3,
    `at most ten redraws a second: ${redraws.length} in ${seconds.toFixed(1)} s`,
  );
  for (const line of redraws)
    t.ok(
      line.replace(/\x1b\[K/, '').replace(/\n[\s\S]*$/, '').length <= 39,
      `fits 40 columns: ${JSON.stringify(line.slice(0, 60))}`,
    );
});
