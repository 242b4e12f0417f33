/**
 * Containers from images: the overlay rootfs create mounts and delete
 * takes down.  The container's view is compared, file by file (type, mode,
 * owner, size, md5, link target), with the tree that applying the layers
 * in order makes (test/image-helpers.ts's oracle), for images that add,
 * change, delete and replace, in all three formats.  Also: two containers
 * of one image share its layers and not their writes; rm of an image in
 * use is refused and gc takes exactly what nothing uses; 100 layers on
 * both mount paths and 501 refused; bad input leaves nothing behind; the
 * progress bar shows on a terminal only.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import {
  alive,
  defaultCgroupDirs,
  IS_ROOT,
  mountsUnder,
  runCommand,
  waitFor,
  tarOf,
  tempDir,
  TSRUN,
  tsrun,
  uniqueId,
  cleanupContainer,
  type TarEntry,
} from '../helpers';
import { differsOnPurpose } from '../compat-helpers';
import {
  applyLayers,
  baseLayer,
  comparable,
  dockerArchive,
  image,
  imageOf,
  listTreeCommand,
  ociArchive,
  ociLayout,
  parseTree,
  type TestImage,
} from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'image tests need root');
  process.exit(0);
}

const PASSWD_WITH_APP = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n';

/** A base and three layers that add, change, delete, replace whole dirs, and hardlink a file from below. */
async function changingImage(): Promise<TestImage> {
  const add = await tarOf([
    { name: 'opt/', type: 'directory', mode: 0o755 },
    { name: 'opt/app/', type: 'directory', mode: 0o755, uid: 1000, gid: 1000 },
    { name: 'opt/app/a', type: 'file', mode: 0o644, content: 'a from layer 1\n' },
    { name: 'opt/app/b', type: 'file', mode: 0o600, uid: 1000, gid: 1000, content: 'b\n' },
    { name: 'opt/keep/', type: 'directory', mode: 0o755 },
    { name: 'opt/keep/x', type: 'file', content: 'x\n' },
    { name: 'usr/', type: 'directory', mode: 0o755 },
    { name: 'usr/local/', type: 'directory', mode: 0o755 },
    { name: 'usr/local/tool', type: 'file', mode: 0o4755, uid: 0, gid: 0, content: '#!/bin/sh\necho tool\n' },
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/hostname', type: 'file', mode: 0o644, content: 'changed-in-layer-1\n' },
    { name: 'etc/passwd', type: 'file', mode: 0o644, content: PASSWD_WITH_APP },
    { name: 'etc/to-hostname', type: 'symlink', linkname: 'hostname' },
    { name: 'var/', type: 'directory', mode: 0o755 },
    { name: 'var/fifo', type: 'fifo', mode: 0o600 },
    { name: 'var/zero', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 5 },
    { name: 'var/sticky/', type: 'directory', mode: 0o1777 },
  ]);
  const remove = await tarOf([
    { name: 'bin/.wh.ls', type: 'file', content: '' },
    { name: 'opt/.wh.keep', type: 'file', content: '' },
    { name: 'opt/app/.wh..wh..opq', type: 'file', content: '' },
    { name: 'opt/app/c', type: 'file', content: 'only c now\n' },
    { name: 'var/.wh.never-existed', type: 'file', content: '' },
    // The docker shape of a hardlink to a lower file: the file comes up into the layer, then the link.
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/group', type: 'file', mode: 0o640, uid: 0, gid: 42, content: 'root:x:0:\napp:x:1000:\n' },
    { name: 'etc/group-link', type: 'link', linkname: 'etc/group' },
  ]);
  const replace = await tarOf([
    { name: 'opt/', type: 'directory', mode: 0o711 },
    { name: 'opt/keep', type: 'file', content: 'keep is a file now\n' },
    { name: 'usr/', type: 'directory', mode: 0o755 },
    { name: 'usr/local', type: 'symlink', linkname: '/opt' },
    { name: 'var/sticky/', type: 'directory', mode: 0o755, uid: 1000 },
  ]);
  return imageOf([baseLayer(), add, remove, replace], { Cmd: ['/bin/sh'], User: 'app', WorkingDir: '/opt' });
}

/** Import `img` in all three formats into `store`; returns the three references. */
async function importAllFormats(
  t: { equal(found: unknown, wanted: unknown, message: string): unknown },
  work: string,
  store: string,
  img: TestImage,
): Promise<string[]> {
  fs.writeFileSync(path.join(work, 'docker.tar'), await dockerArchive(img, 'fmt/docker:1'));
  ociLayout(path.join(work, 'layout'), img, 'fmt/layout:1');
  ociArchive(path.join(work, 'layout'), path.join(work, 'oci.tar'));
  for (const [input, tag] of [
    ['docker.tar', ''],
    ['layout', ''],
    ['oci.tar', 'fmt/archive:1'],
  ]) {
    const r = image(store, ['import', ...(tag ? ['--tag', tag] : []), path.join(work, input)]);
    t.equal(r.status, 0, `import ${input}: ${r.stderr}`);
  }
  return ['fmt/docker:1', 'fmt/layout:1', 'fmt/archive:1'];
}

/** Nothing of container `id` is left: state dir, mounts under `watch`, upper dirs in the store. */
function imageLeftovers(root: string, id: string, store: string, watch: string[]): string[] {
  const found: string[] = [];
  if (fs.existsSync(path.join(root, id))) found.push(`state dir ${path.join(root, id)}`);
  for (const dir of watch) for (const mp of mountsUnder(dir)) found.push(`mount ${mp}`);
  const uses = path.join(store, 'containers');
  if (fs.existsSync(uses)) for (const key of fs.readdirSync(uses)) found.push(`container rootfs ${key}`);
  return found;
}

t.test('the container sees exactly the tree its layers make, from all three formats', async (t) => {
  const work = tempDir(t, 'tsrun-imgrun-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const img = await changingImage();
  const refs = await importAllFormats(t, work, store, img);
  t.equal(fs.readdirSync(path.join(store, 'layers')).length, 4, 'four layers, unpacked once for three imports');
  const expected = comparable(await applyLayers(img.layers));
  t.ok(expected['/opt/app/c'] && !expected['/opt/app/a'] && !expected['/bin/ls'], 'the oracle applied the changes');

  for (const ref of refs) {
    const bundle = path.join(work, `bundle-${ref.replace(/\W/g, '-')}`);
    t.equal(
      tsrun(root, ['bundle', '--store', store, '--user', '0', ref, bundle, '--', 'sh', '-c', listTreeCommand()]).status,
      0,
    );
    const id = uniqueId('tree');
    cleanupContainer(t, root, id);
    const r = tsrun(root, ['run', '-b', bundle, id]);
    t.equal(r.status, 0, `${ref}: ${r.stderr}`);
    t.same(
      Object.fromEntries(parseTree(r.stdout)),
      expected,
      `${ref}: the merged rootfs is the layers applied in order`,
    );
    t.same(imageLeftovers(root, id, store, [bundle]), [], `${ref}: nothing left after run`);
  }

  // The hardlink shares one inode; the image's User resolves through the image's own passwd.
  const id = uniqueId('link');
  const r = tsrun(root, [
    'run',
    '--image',
    refs[0],
    '--store',
    store,
    id,
    '--',
    'sh',
    '-c',
    'stat -c %i /etc/group /etc/group-link | uniq | wc -l; id -u; id -g; pwd; /usr/local/keep 2>&1 | head -1; cat /opt/keep',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(
    r.stdout,
    '1\n1000\n1000\n/opt\nsh: /usr/local/keep: Permission denied\nkeep is a file now\n',
    'one inode for both names; User app from the image; WorkingDir; a symlink that replaced a dir',
  );
});

t.test("bundle --copy: the image's tree itself in the bundle, a plain bundle runc runs too (issue 17)", async (t) => {
  const work = tempDir(t, 'tsrun-imgcopy-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const img = await changingImage();
  fs.writeFileSync(path.join(work, 'docker.tar'), await dockerArchive(img, 'copy/me:1'));
  t.equal(image(store, ['import', path.join(work, 'docker.tar')]).status, 0);
  const expected = comparable(await applyLayers(img.layers));
  const bundle = path.join(work, 'bundle');
  const b = tsrun(root, [
    'bundle',
    '--store',
    store,
    '--copy',
    '--user',
    '0',
    'copy/me:1',
    bundle,
    '--',
    'sh',
    '-c',
    listTreeCommand(),
  ]);
  t.equal(b.status, 0, b.stderr);
  const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  t.notOk(
    Object.keys(config.annotations ?? {}).some((k) => k.startsWith('org.tsrun.image.')),
    'the config names no image: a plain bundle',
  );
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'no work left in the store');
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'no container use either');
  for (const [name, bin] of [
    ['tsrun', TSRUN],
    ['runc', '/usr/sbin/runc'],
  ]) {
    const id = uniqueId(`copy-${name}`);
    const runtimeRoot = path.join(work, `root-${name}`);
    t.teardown(() => {
      runCommand([bin, '--root', runtimeRoot, 'delete', '--force', id]);
    });
    const r = runCommand([bin, '--root', runtimeRoot, 'run', '-b', bundle, id]);
    t.equal(r.status, 0, `${name}: ${r.stderr}`);
    t.same(
      Object.fromEntries(parseTree(r.stdout)),
      expected,
      `${name}: the copied rootfs is the layers applied in order`,
    );
  }
  t.equal(
    (fs.statSync(bundle).mode & 0o777).toString(8),
    '700',
    'the bundle holding the copied tree (setuid files, device nodes) is 0700',
  );
  t.match(
    tsrun(root, ['bundle', '--store', store, '--copy', 'copy/me:1', bundle]).stderr,
    /config\.json already exists/,
    'an existing bundle is refused',
  );
  const open = path.join(work, 'open');
  fs.mkdirSync(open, { mode: 0o755 });
  fs.chmodSync(open, 0o755);
  const refused = tsrun(root, ['bundle', '--store', store, '--copy', 'copy/me:1', open]);
  t.match(
    refused.stderr,
    /other users can enter it \(mode 755\).*use a directory only root can enter/,
    'a directory others can enter is refused',
  );
  t.same(fs.readdirSync(open), [], 'and nothing written there');
});

t.test('two containers of one image share its layers, not their writes', async (t) => {
  differsOnPurpose(t, 'images');
  const work = tempDir(t, 'tsrun-imgrun-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const img = imageOf(
    [
      baseLayer(),
      await tarOf([
        { name: 'data/', type: 'directory', mode: 0o755 },
        { name: 'data/seed', type: 'file', content: 'seed\n' },
      ]),
    ],
    { Cmd: ['sleep', '300'] },
  );
  fs.writeFileSync(path.join(work, 'a.tar'), await dockerArchive(img, 'shared:1'));
  t.equal(image(store, ['import', path.join(work, 'a.tar')]).status, 0);
  const layerInodes = fs
    .readdirSync(path.join(store, 'layers'))
    .map((l) => fs.statSync(path.join(store, 'layers', l)).ino);
  const ids = [uniqueId('one'), uniqueId('two')];
  for (const id of ids) {
    cleanupContainer(t, root, id);
    const r = tsrun(root, ['run', '-d', '--image', 'shared:1', '--store', store, id]);
    t.equal(r.status, 0, r.stderr);
  }
  const w = tsrun(root, ['exec', ids[0], 'sh', '-c', 'echo mine > /data/seed; echo new > /data/new; rm /bin/cat']);
  t.equal(w.status, 0, w.stderr);
  const other = tsrun(root, ['exec', ids[1], 'sh', '-c', 'cat /data/seed; ls /data; ls /bin/cat']);
  t.equal(other.stdout, 'seed\nseed\n/bin/cat\n', "the second container sees none of the first's writes");
  const mine = tsrun(root, ['exec', ids[0], 'sh', '-c', 'cat /data/seed; ls /data; ls /bin/cat 2>&1']);
  t.equal(mine.stdout, 'mine\nnew\nseed\nls: /bin/cat: No such file or directory\n');

  // The overlay is mounted in the container's mount namespace only: read it there.
  const pidOf = (id: string): number => JSON.parse(tsrun(root, ['state', id]).stdout).pid as number;
  const lowers = (id: string): string => {
    const line = fs
      .readFileSync(`/proc/${pidOf(id)}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => / - overlay tsrun-rootfs-/.test(l))!;
    return [...line.matchAll(/lowerdir\+?=([^,]+)/g)].map((m) => m[1]).join(':');
  };
  t.equal(lowers(ids[0]), lowers(ids[1]), 'the same layer directories under both');
  t.match(lowers(ids[0]), new RegExp(`^${path.join(store, 'layers')}/`));
  t.same(
    fs.readdirSync(path.join(store, 'layers')).map((l) => fs.statSync(path.join(store, 'layers', l)).ino),
    layerInodes,
    'no layer copied',
  );
  t.equal(fs.readdirSync(path.join(store, 'containers')).length, 2, 'an upper dir each');
  t.same(
    fs.readdirSync(path.join(store, 'layers')).map((l) => fs.existsSync(path.join(store, 'layers', l, 'data', 'new'))),
    [false, false],
    'writes never reach a layer',
  );

  const rm = image(store, ['rm', 'shared:1']);
  t.not(rm.status, 0);
  t.equal(
    rm.stderr,
    `tsrun: image rm shared:1: image "docker.io/library/shared:1" is in use by containers "${ids[0]}", "${ids[1]}"; delete them first, or give -f\n`,
  );
  t.equal(image(store, ['ls', '-q']).stdout, 'docker.io/library/shared:1\n', 'still there');
  for (const id of ids) t.equal(tsrun(root, ['delete', '-f', id]).status, 0);
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'delete removed both upper dirs');
  t.same(mountsUnder(root), []);
  t.equal(image(store, ['rm', 'shared:1']).status, 0, 'free once its containers are gone');
  t.same(fs.readdirSync(path.join(store, 'layers')), []);
});

t.test('rm of an image in use is refused; gc takes exactly what nothing uses', async (t) => {
  const work = tempDir(t, 'tsrun-imgrun-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const base = baseLayer();
  const a = imageOf([base, await tarOf([{ name: 'a', type: 'file', content: 'a' }])], { Cmd: ['sleep', '300'] });
  const b = imageOf([base, await tarOf([{ name: 'b', type: 'file', content: 'b' }])], { Cmd: ['sleep', '300'] });
  fs.writeFileSync(path.join(work, 'a.tar'), await dockerArchive(a, 'a:1'));
  fs.writeFileSync(path.join(work, 'b.tar'), await dockerArchive(b, 'b:1'));
  t.equal(image(store, ['import', '--tag', 'a:alias', path.join(work, 'a.tar')]).status, 0);
  t.equal(image(store, ['import', path.join(work, 'b.tar')]).status, 0);
  const id = uniqueId('gc');
  cleanupContainer(t, root, id);
  t.equal(tsrun(root, ['run', '-d', '--image', 'a:1', '--store', store, id]).status, 0);

  t.equal(image(store, ['rm', 'a:alias']).status, 0, 'another name of an image in use may go');
  t.match(
    image(store, ['rm', 'a:1']).stderr,
    /image "docker.io\/library\/a:1" is in use by container/,
    'its last name may not',
  );
  t.equal(image(store, ['rm', 'b:1']).status, 0);
  const hexes = (img: TestImage): string[] => img.diffIDs.map((d) => d.slice(7));
  t.same(
    fs.readdirSync(path.join(store, 'layers')).sort(),
    hexes(a).sort(),
    "b's own layer went; the shared base and a's stayed",
  );
  t.equal(image(store, ['gc']).stdout, '', 'gc finds nothing more: the container holds the rest');
  t.equal(tsrun(root, ['delete', '-f', id]).status, 0);
  t.same(fs.readdirSync(path.join(store, 'layers')).sort(), hexes(a).sort(), 'a is still named');

  // A container whose state went away without a delete (a wiped /run): its
  // claim is stale, and gc takes it, but not while the container still runs
  // (its overlay is mounted in its mount namespace, and it may write its upper).
  const bundle = path.join(work, 'bundle');
  t.equal(tsrun(root, ['bundle', '--store', store, 'a:1', bundle]).status, 0);
  const lost = uniqueId('lost');
  t.equal(tsrun(root, ['run', '-d', '-b', bundle, lost]).status, 0);
  const pid = JSON.parse(tsrun(root, ['state', lost]).stdout).pid as number;
  fs.rmSync(path.join(root, lost), { recursive: true });
  const early = image(store, ['gc']);
  t.equal(early.stdout, '', 'gc leaves the rootfs of a container that still runs');
  t.match(
    early.stderr,
    /its overlay is still mounted in the mount namespace of process \d+; left in place/,
    'and says why',
  );
  t.equal(fs.readdirSync(path.join(store, 'containers')).length, 1);
  process.kill(pid, 'SIGKILL');
  t.ok(await waitFor(() => !alive(pid)));
  // A reboot takes these too (below our own cgroup: no cgroupsPath).
  for (const dir of defaultCgroupDirs(lost)) if (fs.existsSync(dir)) fs.rmdirSync(dir);
  t.same(mountsUnder(bundle), [], 'its overlay was never mounted on the host');
  const gc = image(store, ['gc']);
  t.match(gc.stdout, new RegExp(`^container rootfs [0-9a-f-]+ \\(${lost}\\)\n$`), 'gc names the stale rootfs');
  t.same(fs.readdirSync(path.join(store, 'containers')), []);
  t.equal(image(store, ['rm', 'a:1']).status, 0);
  t.same(fs.readdirSync(path.join(store, 'layers')), [], 'then nothing is left');
  t.same(fs.readdirSync(path.join(store, 'blobs', 'sha256')), []);
});

t.test('100 layers, from all three formats, mount on both paths; 501 are refused with nothing left', async (t) => {
  const work = tempDir(t, 'tsrun-imgrun-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const layers = [baseLayer()];
  for (let i = 1; i < 100; i++) {
    const entries: TarEntry[] = [
      { name: 'l/', type: 'directory', mode: 0o755 },
      { name: `l/${i}`, type: 'file', content: `${i}\n` },
    ];
    if (i % 10 === 0) entries.push({ name: `l/.wh.${i - 5}`, type: 'file', content: '' });
    layers.push(await tarOf(entries));
  }
  const img = imageOf(layers, {
    Cmd: [
      'sh',
      '-c',
      "ls /l | wc -l; grep ' / / ' /proc/self/mountinfo | grep -o 'lowerdir[+]*=[^/]*/[^/]*/[^/]*' | head -1",
    ],
  });
  const refs = await importAllFormats(t, work, store, img);
  t.equal(fs.readdirSync(path.join(store, 'layers')).length, 100, 'each of the 100 layers unpacked once');
  const oracle = await applyLayers(layers);
  t.equal([...oracle.keys()].filter((p) => p.startsWith('/l/')).length, 99 - 9, 'the oracle: 99 files, 9 whited out');
  const expected = comparable(oracle);
  const paths = [
    ['lowerdir+ (Linux 6.8+)', {}, 'lowerdir+='],
    ['one mount(2), layers by fd', { TSRUN_TEST_OVERLAY_LEGACY: '1' }, 'lowerdir=/proc/self'],
  ] as const;
  for (const [ref, [how, env]] of [
    [refs[0], paths[0]],
    [refs[1], paths[0]],
    [refs[2], paths[0]],
    [refs[0], paths[1]],
  ] as const) {
    const id = uniqueId('many');
    cleanupContainer(t, root, id);
    const r = tsrun(
      root,
      ['run', '--image', ref, '--store', store, '--user', '0', id, '--', 'sh', '-c', listTreeCommand()],
      { env },
    );
    t.equal(r.status, 0, `${ref}, ${how}: ${r.stderr}`);
    t.same(Object.fromEntries(parseTree(r.stdout)), expected, `${ref}, ${how}: the tree of all 100 layers`);
    t.same(imageLeftovers(root, id, store, [root]), []);
  }
  for (const [how, env, form] of paths) {
    const id = uniqueId('form');
    cleanupContainer(t, root, id);
    const r = tsrun(root, ['run', '--image', refs[0], '--store', store, id], { env });
    t.equal(r.status, 0, `${how}: ${r.stderr}`);
    t.ok(r.stdout.startsWith(`90\n${form}`), `${how}: all there, and mounted that way (${r.stdout.trim()})`);
  }

  const tooMany = [...layers];
  for (let i = 100; i < 501; i++) tooMany.push(await tarOf([{ name: `m${i}`, type: 'file', content: '' }]));
  fs.writeFileSync(
    path.join(work, 'too-many.tar'),
    await dockerArchive(imageOf(tooMany, { Cmd: ['true'] }), 'too-many:1'),
  );
  t.equal(image(store, ['import', path.join(work, 'too-many.tar')]).status, 0, 'such an image imports');
  const id = uniqueId('over');
  const r = tsrun(root, ['run', '--image', 'too-many:1', '--store', store, id]);
  t.not(r.status, 0);
  t.match(
    r.stderr,
    /^tsrun: run over-\d+-\d+: image rootfs of docker\.io\/library\/too-many:1: overlay: more than 500 layers \(overlayfs's limit\)\n$/,
  );
  t.same(imageLeftovers(root, id, store, [root]), [], 'nothing left behind');
});

t.test('bad input: a clear error and nothing left behind', async (t) => {
  const work = tempDir(t, 'tsrun-imgrun-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const img = imageOf([baseLayer()], { Cmd: ['true'] });
  fs.writeFileSync(path.join(work, 'i.tar'), await dockerArchive(img, 'img:1'));
  t.equal(image(store, ['import', path.join(work, 'i.tar')]).status, 0);
  const bundle = path.join(work, 'b');
  const cases: Array<[string, string[], RegExp]> = [
    [
      'an unknown image',
      ['bundle', '--store', store, 'nope', bundle],
      /^tsrun: bundle nope: image "nope" is not in the store /,
    ],
    [
      'a user the image lacks',
      ['bundle', '--store', store, '--user', 'ghost', 'img:1', bundle],
      /^tsrun: bundle img:1: --user: no user "ghost" in the image's \/etc\/passwd\n$/,
    ],
    ['no store', ['bundle', '--store', path.join(work, 'none'), 'img:1', bundle], /image "img:1" is not in the store/],
    [
      '--image with --bundle',
      ['run', '--image', 'img:1', '--store', store, '-b', work, 'x1'],
      /^tsrun: run x1: --bundle and --image: give one of them\n$/,
    ],
    [
      'a command without --image',
      ['run', '-b', work, 'x2', 'ls'],
      /^tsrun: run x2: unexpected arguments after the id: ls \(a command is taken only with --image\)\n$/,
    ],
    ['--env without --image', ['run', '-b', work, '--env', 'A=1', 'x3'], /^tsrun: run x3: --env: only with --image\n$/],
    [
      'an image not in the store',
      ['run', '--image', 'gone:1', '--store', store, 'x4'],
      /^tsrun: run x4: image "gone:1" is not in the store/,
    ],
  ];
  for (const [what, args, message] of cases) {
    const r = tsrun(root, args);
    t.not(r.status, 0, `${what}: refused`);
    t.match(r.stderr, message, what);
    t.notOk(fs.existsSync(bundle), `${what}: no bundle written`);
    t.same(imageLeftovers(root, args[args.length - 1], store, [work]), [], `${what}: nothing left`);
  }

  t.equal(tsrun(root, ['bundle', '--store', store, 'img:1', bundle]).status, 0);
  t.match(
    tsrun(root, ['bundle', '--store', store, 'img:1', bundle]).stderr,
    /config\.json already exists; remove it first/,
  );

  // Two containers on one image bundle: each attaches its own overlay, in
  // its own mount namespace (none on the host), with an upper of its own.
  const pair = [uniqueId('first'), uniqueId('second')];
  for (const id of pair) {
    cleanupContainer(t, root, id);
    const c = tsrun(root, ['create', '-b', bundle, id]);
    t.equal(c.status, 0, `create ${id} on the shared bundle: ${c.stderr}`);
  }
  t.equal(fs.readdirSync(path.join(store, 'containers')).length, 2, 'an upper each');
  t.same(mountsUnder(bundle), [], 'nothing mounted on the bundle in the host');
  for (const id of pair) t.equal(tsrun(root, ['delete', '-f', id]).status, 0);
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'delete took both uppers');

  // The image went away after its bundle was made.
  t.equal(image(store, ['rm', 'img:1']).status, 0);
  const late = uniqueId('late');
  const r = tsrun(root, ['create', '-b', bundle, late]);
  t.not(r.status, 0);
  t.match(
    r.stderr,
    /^tsrun: create late-\d+-\d+: image docker\.io\/library\/img:1 \(sha256:[0-9a-f]{64}\) is no longer in the store /,
  );
  t.same(imageLeftovers(root, late, store, [bundle]), [], 'nothing left');
});

t.test('a progress bar when stderr is a terminal, and nothing decorative otherwise', async (t) => {
  const work = tempDir(t, 'tsrun-imgrun-');
  const img = imageOf([baseLayer(), await tarOf([{ name: 'x', type: 'file', content: 'x' }])], { Cmd: ['true'] });
  fs.writeFileSync(path.join(work, 'p.tar'), await dockerArchive(img, 'p:1'));
  const quiet = image(path.join(work, 'store1'), ['import', path.join(work, 'p.tar')]);
  t.equal(quiet.status, 0);
  t.equal(quiet.stderr, '', 'stderr to a file: nothing');
  // script(1) runs the import on a pty and copies what the terminal got.
  const onTty = spawnSync(
    'script',
    ['-qfec', `${TSRUN} image import --store ${path.join(work, 'store2')} ${path.join(work, 'p.tar')}`, '/dev/null'],
    { encoding: 'utf8', env: { PATH: process.env.PATH } },
  );
  t.equal(onTty.status, 0, onTty.stderr);
  t.match(onTty.stdout, /\r\x1b\[Kreading archive \[[#-]{24}\] \d+\.\d\/\d+\.\d MB/, 'the archive phase');
  t.match(
    onTty.stdout,
    /\r\x1b\[Klayers 2\/2 \[#{24}\] (\d+\.\d)\/\1 MB\r?\n/,
    'the layers, to the end, then a new line',
  );
  t.match(onTty.stdout, /p:1\r?\n$/, 'then the result');
});
