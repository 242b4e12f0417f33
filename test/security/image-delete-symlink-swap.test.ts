/**
 * Issue 14, finding 3: deleting an image container's upper followed the
 * symlinks a live process swapped in.  tsrun removed the upper with Node's
 * path-walking fs.rmSync; a process of the container that survived delete
 * exchanged a directory of its rootfs with a symlink to a host directory
 * (in the upper, a symlink to "/host/dir" points at the host's), and
 * delete unlinked about half of 400 host files.
 *
 * Checked here, with a host directory of 400 files as the target:
 *  - a process holding the container's mount namespace (so outside its
 *    cgroups and pid namespace: delete --force does not kill it) swaps a
 *    directory of the rootfs with such a symlink while delete runs: delete
 *    leaves the upper in place (a process could still write it) and says
 *    so; gc takes it once the process is gone; the host files are intact;
 *  - the tree changes under the removal itself (a host process swapping in
 *    the upper while a second delete removes it, the first having been
 *    killed just before; eight rounds): the host files are intact and the
 *    upper is gone;
 *  - the remover (native removeTree, used for every recursive removal) on
 *    a tree 1000 directories deep, and one with a mount inside: the first
 *    goes whole; the second stops at the mount, names it, and the mount's
 *    files are untouched.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { native } from '../../src/lib/native';
import { alive, cleanupContainer, IS_ROOT, tarOf, tempDir, tsrun, uniqueId, waitFor } from '../helpers';
import { baseLayer, dockerArchive, image, imageOf } from '../image-helpers';
import { buildSwapper, hostDir } from '../security-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

const VICTIMS = 400;

/** A host directory of VICTIMS files; returns it and a count of what is left in it. */
function victimDir(t: any): { dir: string; left: () => number } {
  const dir = path.join(hostDir(t, 'tsrun-victim-'), 'precious');
  fs.mkdirSync(dir);
  for (let i = 0; i < VICTIMS; i++) fs.writeFileSync(path.join(dir, `file-${i}`), 'host data\n');
  return { dir, left: () => fs.readdirSync(dir).length };
}

/** A store with a busybox image holding a static swapper at /swapper, and a --root beside it. */
async function imageStore(t: any): Promise<{ store: string; root: string }> {
  const work = tempDir(t, 'tsrun-swap-');
  const swapper = buildSwapper(t, work, { static: true });
  const extra = await tarOf([{ name: 'swapper', type: 'file', mode: 0o755, content: fs.readFileSync(swapper) }]);
  fs.writeFileSync(
    path.join(work, 'img.tar'),
    await dockerArchive(imageOf([baseLayer(), extra], { Cmd: ['sleep', '1000'] }), 'swap:1'),
  );
  const store = path.join(work, 'store');
  t.equal(image(store, ['import', path.join(work, 'img.tar')]).status, 0, 'image imported');
  return { store, root: path.join(work, 'state') };
}

/** In the container: /race/d, a directory of VICTIMS files, and /race/s, a symlink to the host's `target`. */
const PREPARE = (target: string): string =>
  `mkdir -p /race/d && cd /race/d && i=0; while [ $i -lt ${VICTIMS} ]; do echo x > f$i; i=$((i+1)); done; ln -s ${target} /race/s`;

t.test('a process holding the mount namespace swaps a dir for a symlink to the host while delete runs', async (t) => {
  const victim = victimDir(t);
  const { store, root } = await imageStore(t);
  for (let round = 0; round < 3; round++) {
    const id = uniqueId('swapdel');
    cleanupContainer(t, root, id);
    t.equal(tsrun(root, ['run', '-d', '--image', 'swap:1', '--store', store, id]).status, 0);
    const pid = JSON.parse(tsrun(root, ['state', id]).stdout).pid as number;
    const prep = tsrun(root, ['exec', id, '/bin/sh', '-c', PREPARE(victim.dir)]);
    t.equal(prep.status, 0, prep.stderr);
    // Outside the container's cgroups and pid namespace, inside its mount namespace and root.
    const holder = spawn('nsenter', [`--target=${pid}`, '--mount', '--root', '--', '/swapper', '/race/d', '/race/s'], {
      stdio: 'ignore',
    });
    t.teardown(() => {
      holder.kill('SIGKILL');
    });
    await new Promise((r) => setTimeout(r, 200));
    t.ok(alive(holder.pid!), `round ${round}: the swapper runs in the container`);
    const d = tsrun(root, ['delete', '--force', id]);
    t.equal(d.status, 0, `round ${round}: delete --force: ${d.stderr}`);
    t.match(
      d.stderr,
      /its overlay is still mounted in the mount namespace of process \d+; left in place for image gc/,
      `round ${round}: delete leaves the upper to gc`,
    );
    t.equal(victim.left(), VICTIMS, `round ${round}: every host file is still there`);
    holder.kill('SIGKILL');
    t.ok(await waitFor(() => !alive(holder.pid!)));
    const gc = image(store, ['gc']);
    t.match(
      gc.stdout,
      new RegExp(`container rootfs [0-9a-f-]+ \\(${id}\\)`),
      `round ${round}: gc takes the upper once nothing holds it: ${gc.stderr}`,
    );
    t.same(fs.readdirSync(path.join(store, 'containers')), []);
    t.equal(victim.left(), VICTIMS, `round ${round}: and the host files are still all there`);
  }
});

t.test('the upper changing under its removal: no host file is touched', async (t) => {
  const victim = victimDir(t);
  const { store, root } = await imageStore(t);
  const hostSwapper = buildSwapper(t, tempDir(t, 'tsrun-swapbin-'));
  let swapsDuringDelete = 0;
  for (let round = 0; round < 8; round++) {
    const id = uniqueId('swaprm');
    cleanupContainer(t, root, id);
    t.equal(tsrun(root, ['run', '-d', '--image', 'swap:1', '--store', store, id]).status, 0);
    t.equal(tsrun(root, ['exec', id, '/bin/sh', '-c', PREPARE(victim.dir)]).status, 0);
    // A delete killed once the container is gone but before its upper is
    // removed; the next delete removes it...
    const first = tsrun(root, ['delete', '--force', id], { env: { TSRUN_TEST_CRASH_AT: 'delete:cgroups' } });
    t.equal(first.signal, 'SIGKILL', `round ${round}: the first delete stopped before the upper went`);
    const [key] = fs.readdirSync(path.join(store, 'containers'));
    // ...while a host process swaps in the upper as fast as it can.
    const swapper = spawn(hostSwapper, ['d', 's'], {
      cwd: path.join(store, 'containers', key, 'upper', 'race'),
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let printed = '';
    swapper.stdout!.on('data', (b: Buffer) => {
      printed += b.toString();
    });
    const ended = new Promise<void>((resolve) => swapper.on('close', () => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    swapper.kill('SIGUSR1');
    const d = tsrun(root, ['delete', '--force', id]);
    // It ends by itself once the removal takes its entries, saying how often it swapped since the mark.
    const timer = setTimeout(() => swapper.kill('SIGKILL'), 5000);
    await ended;
    clearTimeout(timer);
    swapsDuringDelete += Number(printed.trim() || 0);
    t.match(printed, /^\d+\n$/, `round ${round}: the swapper was swapping until the removal took its entries`);
    t.equal(d.status, 0, `round ${round}: delete: ${d.stderr}`);
    t.same(fs.readdirSync(path.join(store, 'containers')), [], `round ${round}: the upper is gone`);
    t.equal(victim.left(), VICTIMS, `round ${round}: every host file is still there`);
  }
  t.ok(
    swapsDuringDelete > 0,
    `the tree changed after the second delete began: ${swapsDuringDelete} exchanges in 8 rounds`,
  );
});

t.test('removeTree: any depth goes whole; a mount inside stops it, named, and is not entered', async (t) => {
  const base = tempDir(t, 'tsrun-rmtree-');
  // 1000 levels: deeper than the fds the remover keeps open (it moves deep directories up).
  const deep = path.join(base, 'deep');
  fs.mkdirSync(deep);
  let at = deep;
  for (let i = 0; i < 1000; i++) {
    fs.writeFileSync(path.join(at, 'f'), 'x');
    fs.symlinkSync('/etc', path.join(at, 'etc-link'));
    fs.mkdirSync(path.join(at, 'd'));
    at = path.join(at, 'd'); // relative creation would allow more; paths of this length still work
    if (at.length > 3900) break;
  }
  native.removeTree(deep);
  t.notOk(fs.existsSync(deep), 'the deep tree is gone');
  t.ok(fs.existsSync('/etc/passwd'), 'no symlink was followed');

  const withMount = path.join(base, 'with-mount');
  const mnt = path.join(withMount, 'sub', 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  const mount = spawn('mount', ['-t', 'tmpfs', 'tsrun-rmtree-test', mnt], { stdio: 'ignore' });
  await new Promise((r) => mount.on('exit', r));
  t.teardown(() => {
    spawn('umount', [mnt], { stdio: 'ignore' });
  });
  fs.writeFileSync(path.join(mnt, 'kept'), 'on the mount');
  t.throws(() => native.removeTree(withMount), {
    message: new RegExp(`remove ${withMount}/sub/mnt: enter a mount point \\(not removed\\)`),
  });
  t.ok(fs.existsSync(path.join(mnt, 'kept')), "the mount's files are untouched");
  await new Promise((r) => spawn('umount', [mnt], { stdio: 'ignore' }).on('exit', r));
  native.removeTree(withMount);
  t.notOk(fs.existsSync(withMount), 'once unmounted it goes');
  t.doesNotThrow(() => native.removeTree(path.join(base, 'never-existed')), 'a missing path is no error');
});
