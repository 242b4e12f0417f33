/**
 * Images for a user (issue 20; src/lib/image/user-store.ts): a test user
 * imports an image into its own store, whose files get the user's
 * subordinate ids as their owners, and runs containers of it.  Their view
 * is compared, file by file, with the tree that applying the layers in
 * order makes (the oracle of test/image-helpers.ts), and with what rootless
 * runc sees of the same image copied out by `bundle --copy`.  Then: the
 * container's writes, exec, delete and image rm leave nothing; the refusals
 * (no subordinate ids, a store of another map, root given a user's store,
 * a config of another map) name their cause and make nothing.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, tarOf, type TestLike, TSRUN, tsrun, uniqueId } from '../helpers';
import {
  applyLayers,
  baseLayer,
  comparable,
  dockerArchive,
  image,
  imageOf,
  listTreeCommand,
  ociLayout,
  parseTree,
  type TestImage,
} from '../image-helpers';
import { haveRegistry, htpasswd, skopeoPush, startRegistry } from '../registry-helpers';
import { asUser, makeTestUser, type TestUser, tsrunAsUser, userState } from '../rootless-helpers';

if (!IS_ROOT) {
  t.plan(0, 'rootless image tests make users: they need root');
  process.exit(0);
}

/** Layers that add files of several owners, a setuid file, a device node and a trusted.* xattr, then whiteout and opaque. */
async function ownersImage(): Promise<TestImage> {
  const add = await tarOf([
    { name: 'opt/', type: 'directory', mode: 0o755 },
    { name: 'opt/app/', type: 'directory', mode: 0o755, uid: 1000, gid: 1000 },
    { name: 'opt/app/a', type: 'file', mode: 0o644, uid: 1000, gid: 1000, content: 'a\n' },
    { name: 'opt/app/b', type: 'file', content: 'b\n' },
    { name: 'opt/www/', type: 'directory', mode: 0o755, uid: 33, gid: 33 },
    { name: 'opt/www/index', type: 'file', mode: 0o644, uid: 33, gid: 33, content: 'hello\n' },
    { name: 'opt/keep/', type: 'directory', mode: 0o755 },
    { name: 'opt/keep/x', type: 'file', content: 'x\n' },
    { name: 'opt/tool', type: 'file', mode: 0o4755, content: '#!/bin/sh\n' },
    { name: 'opt/marked', type: 'file', content: 'm\n', pax: { 'SCHILY.xattr.trusted.mark': 'y' } },
    { name: 'opt/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'opt/fifo', type: 'fifo', mode: 0o600, uid: 33, gid: 33 },
  ]);
  const change = await tarOf([
    { name: 'opt/.wh.keep', type: 'file', content: '' },
    { name: 'opt/app/.wh..wh..opq', type: 'file', content: '' },
    { name: 'opt/app/c', type: 'file', mode: 0o644, uid: 1000, gid: 1000, content: 'only c now\n' },
    { name: 'bin/.wh.ls', type: 'file', content: '' },
  ]);
  return imageOf([baseLayer(), add, change], { Cmd: ['/bin/sh'] });
}

/** The oracle's tree as a user's store shows it: no device nodes (a user namespace cannot make them). */
async function expectedTree(img: TestImage): Promise<ReturnType<typeof comparable>> {
  const tree = comparable(await applyLayers(img.layers));
  for (const [name, node] of Object.entries(tree)) if (node.type === 'char' || node.type === 'block') delete tree[name];
  return tree;
}

/** A directory the user owns, only it may enter, with the image's docker archive in it. */
async function userWork(t: TestLike, user: TestUser, img: TestImage, tag: string): Promise<string> {
  const work = fs.mkdtempSync(path.join('/tmp', 'tsrun-rlimg-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  fs.writeFileSync(path.join(work, 'image.tar'), await dockerArchive(img, tag));
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, work]);
  fs.chmodSync(work, 0o700);
  return work;
}

/** Users whose store goes on a tmpfs given as $XDG_DATA_HOME: the directory. */
const dataHomes = new Map<string, string>();

/**
 * A test user.  Where its home is on overlayfs (the test VM's root is one),
 * which refuses whiteouts, its store goes on a tmpfs of its own, named by
 * $XDG_DATA_HOME; elsewhere in its home, the default.
 */
function imageUser(t: TestLike, opts: Parameters<typeof makeTestUser>[1] = {}): TestUser {
  const user = makeTestUser(t, opts);
  const type = spawnSync('stat', ['-f', '-c', '%T', `/home/${user.name}`], { encoding: 'utf8' }).stdout.trim();
  if (type === 'overlayfs') {
    const dir = fs.mkdtempSync('/tmp/tsrun-rlimg-data-');
    t.teardown(() => {
      spawnSync('umount', ['-l', dir]);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(`${dir}.img`, { force: true });
    });
    // A tmpfs keeps user.* attributes only since Linux 6.6: before, an ext4 image (the VM loads loop, crc32c_generic and ext4).
    const mount = TMPFS_USER_XATTRS
      ? spawnSync('mount', ['-t', 'tmpfs', 'tsrun-test', dir], { encoding: 'utf8' })
      : spawnSync(
          'sh',
          ['-ec', 'truncate -s 512M "$0.img"; mkfs.ext4 -q -F "$0.img"; mount -o loop "$0.img" "$0"', dir],
          {
            encoding: 'utf8',
          },
        );
    if (mount.status !== 0) throw new Error(`a filesystem for ${user.name}'s store: ${mount.stderr}`);
    fs.chownSync(dir, user.uid, user.gid);
    fs.chmodSync(dir, 0o700);
    dataHomes.set(user.name, dir);
  }
  return user;
}

/** Whether this kernel's tmpfs keeps user.* extended attributes (Linux 6.6 and later). */
const TMPFS_USER_XATTRS = ((): boolean => {
  const dir = fs.mkdtempSync('/tmp/tsrun-xattr-probe-');
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', 'tsrun-probe', dir]).status !== 0) return true;
    const set = spawnSync('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "user.probe", b"1")', dir]);
    spawnSync('umount', [dir]);
    return set.status === 0;
  } finally {
    fs.rmdirSync(dir);
  }
})();

/** The user's $XDG_DATA_HOME, where it has one of its own. */
function dataEnv(user: TestUser): Record<string, string> {
  const data = dataHomes.get(user.name);
  return data ? { XDG_DATA_HOME: data } : {};
}

/** tsrun as the user, with its $XDG_DATA_HOME where it has one of its own. */
function tsrunFor(user: TestUser, args: string[], opts: Parameters<typeof tsrunAsUser>[2] = {}) {
  return tsrunAsUser(user, args, { ...opts, env: { ...dataEnv(user), ...(opts.env ?? {}) } });
}

const storeOf = (user: TestUser): string =>
  path.join(dataHomes.get(user.name) ?? `/home/${user.name}/.local/share`, 'tsrun');

function getxattr(file: string, name: string): string {
  const r = spawnSync(
    'python3',
    ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).decode())', file, name],
    {
      encoding: 'utf8',
    },
  );
  return r.status === 0 ? r.stdout.trim() : `(none: ${r.stderr.trim().split('\n').pop()})`;
}

t.test("a user's image: imported with its owners shifted into the user's ranges, run as the layers say", async (t) => {
  const user = imageUser(t);
  const img = await ownersImage();
  const work = await userWork(t, user, img, 'rl/owners:1');
  const store = storeOf(user);

  const imp = tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')]);
  t.equal(imp.status, 0, imp.stderr);
  t.equal(imp.stdout, 'docker.io/rl/owners:1\n');
  t.match(
    imp.stderr,
    /opt\/null.*a user's image store cannot make them/,
    'the device node is left out, with a warning',
  );
  t.match(imp.stderr, /opt\/marked: dropped trusted\.mark/, 'the trusted.* attribute is left out, with a warning');

  // On the host: the store is the user's, its files' owners the user's subordinate ids.
  const maps = JSON.parse(fs.readFileSync(path.join(store, 'idmap.json'), 'utf8'));
  t.same(
    maps.uidMappings,
    [
      { containerID: 0, hostID: user.uid, size: 1 },
      { containerID: 1, hostID: user.subuid, size: 65536 },
    ],
    "idmap.json records the user's map",
  );
  const layer = (i: number): string => path.join(store, 'layers', img.diffIDs[i].slice(7));
  const www = fs.statSync(path.join(layer(1), 'opt/www/index'));
  t.same([www.uid, www.gid], [user.subuid! + 32, user.subgid! + 32], "uid 33 is stored as the user's subordinate 33");
  const app = fs.statSync(path.join(layer(1), 'opt/app/a'));
  t.same([app.uid, app.gid], [user.subuid! + 999, user.subgid! + 999]);
  const rootOwned = fs.statSync(path.join(layer(1), 'opt/tool'));
  t.same([rootOwned.uid, rootOwned.mode & 0o7777], [user.uid, 0o4755], "root's files are the user's own, setuid kept");
  t.equal(
    getxattr(path.join(layer(2), 'opt/app'), 'user.overlay.opaque'),
    'y',
    'the opaque mark is user.overlay.opaque',
  );
  const wh = fs.lstatSync(path.join(layer(2), 'opt/keep'));
  t.ok(wh.isCharacterDevice() && wh.rdev === 0, 'the whiteout is a 0/0 device, made in the user namespace');
  t.notOk(fs.existsSync(path.join(layer(1), 'opt/null')), 'no device node in the layer');

  // The container's view is the layers applied in order, owners as the layers name them.
  const id = uniqueId('rlimg');
  const r = tsrunFor(user, ['run', '--image', 'rl/owners:1', '--user', '0', id, '--', 'sh', '-c', listTreeCommand()]);
  t.equal(r.status, 0, r.stderr);
  const expected = await expectedTree(img);
  t.same(Object.fromEntries(parseTree(r.stdout)), expected, 'the merged rootfs is the layers applied in order');
  // Before Linux 6.8 the overlay is one mount(2) on a staging directory: in the store namespace too.
  const legacy = tsrunFor(
    user,
    ['run', '--image', 'rl/owners:1', '--user', '0', uniqueId('rlimg'), '--', 'sh', '-c', listTreeCommand()],
    { env: { TSRUN_TEST_OVERLAY_LEGACY: '1' } },
  );
  t.equal(legacy.status, 0, legacy.stderr);
  t.same(Object.fromEntries(parseTree(legacy.stdout)), expected, 'the same tree through the pre-6.8 mount');
  t.same(fs.readdirSync(path.join(store, 'containers')), [], "run's delete took the container's upper");
  t.same(userState(user), [], 'no state left');
});

t.test("a user's image container: writes, exec, ps, kill and delete, and image rm, leave nothing", async (t) => {
  const user = imageUser(t);
  const img = await ownersImage();
  const work = await userWork(t, user, img, 'rl/life:1');
  const store = storeOf(user);
  t.equal(tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')]).status, 0);

  const id = uniqueId('rllife');
  const run = tsrunFor(user, ['run', '-d', '--image', 'rl/life:1', id, '--', 'sleep', '300']);
  t.equal(run.status, 0, run.stderr);
  t.teardown(() => tsrunFor(user, ['delete', '--force', id]));
  // Writes as the files' owners (the default capabilities hold no CAP_DAC_OVERRIDE): a new file and a
  // copy-up of uid 33 keep that owner, a whiteout hides a file of the opaque directory.
  const www = tsrunFor(user, [
    'exec',
    '--user',
    '33:33',
    id,
    'sh',
    '-c',
    'echo new > /opt/www/new && echo more >> /opt/www/index && stat -c %u:%g /opt/www/new /opt/www/index && cat /opt/www/index',
  ]);
  t.equal(www.status, 0, www.stderr);
  t.equal(www.stdout, '33:33\n33:33\nhello\nmore\n');
  const app = tsrunFor(user, [
    'exec',
    '--user',
    '1000:1000',
    id,
    'sh',
    '-c',
    'rm /opt/app/c && ls -A /opt/app | wc -l',
  ]);
  t.equal(app.status, 0, app.stderr);
  t.equal(app.stdout, '0\n', 'the opaque directory shows nothing of the layers below once c is gone');
  const uppers = fs.readdirSync(path.join(store, 'containers'));
  t.equal(uppers.length, 1, 'one container rootfs in the store');
  const copied = fs.statSync(path.join(store, 'containers', uppers[0], 'upper/opt/www/index'));
  t.equal(copied.uid, user.subuid! + 32, "the copied-up file keeps its owner, the user's subordinate 33");
  t.same(fs.readdirSync(path.join(store, 'layers')).length, 3, 'the layers are untouched (writes went to the upper)');
  t.notOk(
    fs.readFileSync(path.join(store, 'layers', img.diffIDs[1].slice(7), 'opt/www/index'), 'utf8').includes('more'),
    "the layer's file is unchanged",
  );

  const state = tsrunFor(user, ['state', id]);
  t.equal(state.status, 0, state.stderr);
  t.equal(JSON.parse(state.stdout).status, 'running');
  const rm = tsrunFor(user, ['image', 'rm', 'rl/life:1']);
  t.not(rm.status, 0, 'an image in use is not removed');
  t.match(rm.stderr, new RegExp(`in use by container "${id}"`));

  t.equal(tsrunFor(user, ['kill', id, 'KILL']).status, 0);
  const del = tsrunFor(user, ['delete', id]);
  t.equal(del.status, 0, del.stderr);
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'delete took the upper, subordinate-owned files and all');
  const readOnly = tsrunFor(user, [
    'run',
    '--image',
    'rl/life:1',
    '--read-only',
    uniqueId('rlro'),
    '--',
    'sh',
    '-c',
    'touch /opt/x 2>&1; cat /opt/www/index',
  ]);
  t.equal(readOnly.status, 0, readOnly.stderr);
  t.match(readOnly.stdout, /touch: \/opt\/x: Read-only file system\nhello\n$/, '--read-only: the overlay is read-only');
  const rm2 = tsrunFor(user, ['image', 'rm', 'rl/life:1']);
  t.equal(rm2.status, 0, rm2.stderr);
  t.same(
    fs.readdirSync(path.join(store, 'layers')),
    [],
    'image rm took the layers (their directories of subordinate owners too)',
  );
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'nothing in tmp/');
  t.same(userState(user), []);
  const left = spawnSync('ps', ['-o', 'pid=,stat=,args=', '-u', String(user.uid)], { encoding: 'utf8' }).stdout;
  t.equal(
    left
      .split('\n')
      .filter((l) => l && !/^\s*\d+\s+Z/.test(l))
      .join('\n'),
    '',
    'no process of the user is left',
  );
});

t.test('bundle --copy as a user: the same tree under rootless runc as under tsrun --image', async (t) => {
  const user = imageUser(t);
  const img = await ownersImage();
  const work = await userWork(t, user, img, 'rl/copy:1');
  t.equal(tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')]).status, 0);
  const bundle = path.join(work, 'bundle');
  const b = tsrunFor(user, [
    'bundle',
    '--copy',
    '--user',
    '0',
    'rl/copy:1',
    bundle,
    '--',
    'sh',
    '-c',
    listTreeCommand(),
  ]);
  t.equal(b.status, 0, b.stderr);
  const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  t.same(
    config.linux.uidMappings[1],
    { containerID: 1, hostID: user.subuid, size: 65536 },
    "the copy's config has the store's map",
  );
  const expected = await expectedTree(img);
  const viaRunc = asUser(user, [
    'runc',
    '--root',
    path.join(work, 'runc-state'),
    'run',
    '-b',
    bundle,
    uniqueId('rlcopy'),
  ]);
  t.equal(viaRunc.status, 0, viaRunc.stderr);
  t.same(Object.fromEntries(parseTree(viaRunc.stdout)), expected, 'rootless runc sees the layers applied in order');
  const viaTsrun = tsrunFor(user, ['run', '-b', bundle, uniqueId('rlcopy')]);
  t.equal(viaTsrun.status, 0, viaTsrun.stderr);
  t.equal(viaTsrun.stdout, viaRunc.stdout, 'tsrun and runc print the same tree of the copy');
});

t.test('refusals: no subordinate ids, another map, root with a user store, a config of another map', async (t) => {
  const img = await ownersImage();

  // A user without ranges: the import says why, and makes no store.
  const bare = imageUser(t, { subordinate: false });
  const bareWork = await userWork(t, bare, img, 'rl/bare:1');
  const noIds = tsrunFor(bare, ['image', 'import', path.join(bareWork, 'image.tar')]);
  t.not(noIds.status, 0);
  t.match(noIds.stderr, new RegExp(`/etc/subuid gives user ${bare.name} \\(uid ${bare.uid}\\) no subordinate ids`));
  t.notOk(fs.existsSync(storeOf(bare)), 'no store made');
  // An empty store's table, and an unknown name, need no store namespace (nor subordinate ids).
  const emptyLs = tsrunFor(bare, ['image', 'ls']);
  t.equal(emptyLs.status, 0, emptyLs.stderr);
  t.match(emptyLs.stdout, /^REPOSITORY\s+TAG/);
  const unknown = tsrunFor(bare, ['image', 'history', 'rl/none:1']);
  t.not(unknown.status, 0);
  t.match(unknown.stderr, /image "rl\/none:1" is not in the store/);

  const user = imageUser(t);
  const work = await userWork(t, user, img, 'rl/refuse:1');
  // No newuidmap on PATH: the store namespace cannot be made; said, and no store made.
  // /usr/sbin has runuser, not newuidmap (/usr/bin).
  const noTool = tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')], { env: { PATH: '/usr/sbin' } });
  t.not(noTool.status, 0);
  t.match(noTool.stderr, /^tsrun: image import: the user's store namespace: uid map: newuidmap is not on PATH/m);
  t.notOk(fs.existsSync(storeOf(user)), 'no store made');
  t.equal(tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')]).status, 0);
  const store = storeOf(user);

  // Root may not run a user's store (its opaque marks and owners are the user namespace's).
  const rootId = uniqueId('rlroot');
  const rootState = path.join(work, 'root-state');
  const asRoot = tsrun(rootState, ['run', '--image', 'rl/refuse:1', '--store', store, rootId, '--', 'true']);
  t.not(asRoot.status, 0);
  t.match(asRoot.stderr, /org\.tsrun\.image\.store: .* is a user's image store/);
  t.notOk(fs.existsSync(path.join(rootState, rootId)), "root's failed create left no state");

  // A config with another map (a smaller range): refused before anything is made.
  const bundle = path.join(work, 'own-map');
  t.equal(tsrunFor(user, ['bundle', 'rl/refuse:1', bundle, '--', 'true']).status, 0);
  const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  config.linux.uidMappings[1].size = 1000;
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
  const own = tsrunFor(user, ['run', '-b', bundle, uniqueId('rlown')]);
  t.not(own.status, 0);
  t.match(
    own.stderr,
    /linux\.uidMappings and linux\.gidMappings: the image store .* holds files written with the uid map 0:\d+:1,1:\d+:65536, not 0:\d+:1,1:\d+:1000;/,
  );
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'nothing made in the store');
  t.same(userState(user), [], 'no state left');

  // A store path too long for the socket that brings the overlay back: said, and nothing left.
  const long = path.join(path.dirname(store), 'd'.repeat(90));
  fs.mkdirSync(long);
  spawnSync('chown', [`${user.uid}:${user.gid}`, long]);
  const longEnv = { env: { XDG_DATA_HOME: long } };
  t.equal(tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')], longEnv).status, 0);
  const tooLong = tsrunFor(user, ['run', '--image', 'rl/refuse:1', uniqueId('rllong'), '--', 'true'], longEnv);
  t.not(tooLong.status, 0);
  t.match(tooLong.stderr, /is too long for the unix socket that brings the overlay back/);
  t.same(fs.readdirSync(path.join(long, 'tsrun', 'containers')), [], 'nothing left in that store');
  t.same(userState(user), []);

  // Where a tmpfs keeps no user.* attributes (before Linux 6.6: the VM), a store there is refused by name.
  if (!TMPFS_USER_XATTRS) {
    const bare = fs.mkdtempSync('/tmp/tsrun-rlimg-tmpfs-');
    t.teardown(() => {
      spawnSync('umount', ['-l', bare]);
      fs.rmdirSync(bare);
    });
    t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', `uid=${user.uid},gid=${user.gid}`, 'tsrun-test', bare]).status, 0);
    const noXattrs = tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')], {
      env: { XDG_DATA_HOME: bare },
    });
    t.not(noXattrs.status, 0);
    t.match(noXattrs.stderr, /opt\/app: the image store's filesystem keeps no user\.\* extended attributes/);
    t.same(fs.readdirSync(bare), [], 'a failed first import leaves no store');
  }

  // A store written with another map (as after /etc/subuid changed): the import is refused.
  const file = path.join(store, 'idmap.json');
  const maps = JSON.parse(fs.readFileSync(file, 'utf8'));
  maps.uidMappings[1].hostID += 65536;
  fs.writeFileSync(file, JSON.stringify(maps));
  const again = tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')]);
  t.not(again.status, 0);
  t.match(again.stderr, /image import: the image store .* holds files written with the uid map .* must be made again/);
});

t.test('a user image with an owner beyond its ranges is refused by name, and leaves nothing', async (t) => {
  const user = imageUser(t);
  const far = await tarOf([{ name: 'far', type: 'file', uid: 70000, gid: 0, content: 'x\n' }]);
  const img = imageOf([baseLayer(), far], { Cmd: ['/bin/sh'] });
  const work = await userWork(t, user, img, 'rl/far:1');
  const r = tsrunFor(user, ['image', 'import', path.join(work, 'image.tar')]);
  t.not(r.status, 0);
  t.match(r.stderr, /far: owned by 70000:0, beyond the ids this user's store namespace maps \(uids 0-65536/);
  t.notOk(fs.existsSync(storeOf(user)), 'a failed first import leaves no store');
});

t.test('a store on overlayfs is refused before anything is made (it cannot hold whiteouts)', async (t) => {
  const work = fs.mkdtempSync(path.join('/tmp', 'tsrun-ovlstore-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  for (const d of ['lower', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(work, d));
  const merged = path.join(work, 'merged');
  const m = spawnSync('mount', [
    '-t',
    'overlay',
    '-o',
    `lowerdir=${work}/lower,upperdir=${work}/upper,workdir=${work}/work`,
    'tsrun-test',
    merged,
  ]);
  t.equal(m.status, 0, String(m.stderr));
  t.teardown(() => spawnSync('umount', ['-l', merged]));
  fs.writeFileSync(path.join(work, 'image.tar'), await dockerArchive(await ownersImage(), 'rl/ovl:1'));
  const store = path.join(merged, 'deep', 'store');
  const r = tsrun(path.join(work, 'state'), ['image', 'import', '--store', store, path.join(work, 'image.tar')]);
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    new RegExp(`image store ${store}: ${merged} is on overlayfs, which cannot hold a layer's whiteouts`),
  );
  t.same(fs.readdirSync(merged), [], 'nothing made there');
});

t.test("import from stdin, image ls and history as a user: as root's for the same image", async (t) => {
  const user = imageUser(t);
  // A directory only one of the user's subordinate ids may enter: the sizes are walked in the store namespace.
  const secret = await tarOf([
    { name: 'srv/', type: 'directory', mode: 0o700, uid: 70, gid: 70 },
    { name: 'srv/data', type: 'file', mode: 0o600, uid: 70, gid: 70, content: 'x'.repeat(5000) },
  ]);
  const img = imageOf([baseLayer(), secret], { Cmd: ['/bin/sh'] });
  const work = await userWork(t, user, img, 'rl/sizes:1');
  // As `docker save ... | tsrun image import -`: the archive on stdin, through the store namespace.
  const imp = asUser(user, ['sh', '-c', `'${TSRUN}' image import - < image.tar`], { cwd: work, env: dataEnv(user) });
  t.equal(imp.status, 0, imp.stderr);
  t.equal(imp.stdout, 'docker.io/rl/sizes:1\n');
  const rootStore = path.join(work, 'root-store');
  t.equal(image(rootStore, ['import', path.join(work, 'image.tar')]).status, 0);
  for (const args of [['ls'], ['history', 'rl/sizes:1']]) {
    const mine = tsrunFor(user, ['image', ...args]);
    t.equal(mine.status, 0, mine.stderr);
    t.equal(mine.stdout, image(rootStore, args).stdout, `image ${args[0]}: the same table as root's`);
  }
  t.match(tsrunFor(user, ['image', 'ls']).stdout, /rl\/sizes/);
});

t.test(
  "a user's pull: image pull and run --image from a registry, written in its store namespace",
  {
    skip: haveRegistry() ? false : 'docker-registry and skopeo are not installed (scripts/setup.sh --engines)',
  },
  async (t) => {
    const reg = await startRegistry(t);
    const img = await ownersImage();
    const layout = fs.mkdtempSync(path.join('/tmp', 'tsrun-rlimg-layout-'));
    t.teardown(() => fs.rmSync(layout, { recursive: true, force: true }));
    ociLayout(layout, img, 'x');
    skopeoPush(layout, 'x', `${reg.host}/rl/pulled:1`);
    const user = imageUser(t);
    const store = storeOf(user);

    const pull = tsrunFor(user, ['image', 'pull', `${reg.host}/rl/pulled:1`]);
    t.equal(pull.status, 0, pull.stderr);
    t.equal(pull.stdout, `${reg.host}/rl/pulled:1\n`);
    t.match(pull.stderr, /opt\/null.*a user's image store cannot make them/, 'the device node left out, as by import');
    const www = fs.statSync(path.join(store, 'layers', img.diffIDs[1].slice(7), 'opt/www/index'));
    t.same([www.uid, www.gid], [user.subuid! + 32, user.subgid! + 32], "uid 33 stored as the user's subordinate 33");

    // run --image of an image not in the store: pulled there first, quietly (stdout is the container's).
    skopeoPush(layout, 'x', `${reg.host}/rl/second:1`);
    t.equal(tsrunFor(user, ['image', 'rm', `${reg.host}/rl/pulled:1`]).status, 0);
    const id = uniqueId('rlpull');
    const run = tsrunFor(user, [
      'run',
      '--image',
      `${reg.host}/rl/second:1`,
      '--user',
      '0',
      id,
      '--',
      'stat',
      '-c',
      '%u',
      '/opt/www/index',
    ]);
    t.equal(run.status, 0, run.stderr);
    t.equal(run.stdout, '33\n', "the container's output only, the owner as the layer names it");
    t.same(userState(user), [], 'no container left');

    // A registry that wants credentials: the user's own, where podman login keeps them
    // ($XDG_RUNTIME_DIR/containers/auth.json), read in its store namespace, where it is root.
    const dir = fs.mkdtempSync(path.join('/tmp', 'tsrun-rlimg-reg-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    htpasswd(path.join(dir, 'htpasswd'), { carol: 'pw' });
    const locked = await startRegistry(t, { htpasswd: path.join(dir, 'htpasswd') });
    skopeoPush(layout, 'x', `${locked.host}/rl/locked:1`, { creds: 'carol:pw' });
    const denied = tsrunFor(user, ['image', 'pull', `${locked.host}/rl/locked:1`]);
    t.not(denied.status, 0);
    t.match(denied.stderr, 'authentication required, and there are no credentials for it');
    const authDir = path.join(user.runtimeDir, 'containers');
    fs.mkdirSync(authDir);
    fs.writeFileSync(
      path.join(authDir, 'auth.json'),
      JSON.stringify({ auths: { [locked.host]: { auth: Buffer.from('carol:pw').toString('base64') } } }),
      { mode: 0o600 },
    );
    spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, authDir]);
    const allowed = tsrunFor(user, ['image', 'pull', `${locked.host}/rl/locked:1`]);
    t.equal(allowed.status, 0, allowed.stderr);
    t.equal(allowed.stdout, `${locked.host}/rl/locked:1\n`);

    // Without $XDG_RUNTIME_DIR: the user's ~/.docker/config.json, not root's /run/containers/0 (which root of
    // the store namespace, being the user, could not even read).
    const made = ['/run/containers', '/run/containers/0'].filter((dir) => !fs.existsSync(dir));
    for (const dir of made) fs.mkdirSync(dir, { mode: 0o700 });
    t.teardown(() => {
      for (const dir of made.reverse()) fs.rmdirSync(dir);
    });
    const dockerDir = path.join('/home', user.name, '.docker');
    fs.mkdirSync(dockerDir);
    // Copied, not renamed: the test VM's /tmp and /home are different filesystems.
    fs.copyFileSync(path.join(authDir, 'auth.json'), path.join(dockerDir, 'config.json'));
    fs.rmSync(path.join(authDir, 'auth.json'));
    spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, dockerDir]);
    t.equal(tsrunFor(user, ['image', 'rm', `${locked.host}/rl/locked:1`]).status, 0);
    const noXdg = tsrunFor(user, ['image', 'pull', `${locked.host}/rl/locked:1`], { env: { XDG_RUNTIME_DIR: '' } });
    t.equal(noXdg.status, 0, noXdg.stderr);
  },
);
