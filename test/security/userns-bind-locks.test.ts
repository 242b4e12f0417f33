/**
 * Issue 15 review: bind mounts of a container with a user namespace of its
 * own were cloned in the host's mount namespace, so they carried none of
 * the kernel's locks.  When a mount namespace is copied into a less
 * privileged user namespace, the kernel locks what came from outside: the
 * flags the host set on a mount (ro, nosuid, nodev, noexec, atime) cannot
 * be cleared, and a mount on top of another cannot be unmounted to show
 * what it covers.  A bind made from the host's namespace had neither, so
 * the container's root (with CAP_SYS_ADMIN in its own user namespace, as a
 * `--cap-add SYS_ADMIN` userns container has) could remount a read-only
 * host mount writable, or unmount a host mount inside an rbind and read
 * the files it hid.  runc binds from within the container's mount
 * namespace (its parent joins that namespace for sources the container's
 * root cannot reach); so does tsrun now, and both are compared here.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { cleanupBoth, referenceInstalled, seen, underBoth } from '../compat-helpers';
import { IS_ROOT, leftovers, makeBundle, runCommand, tempDir, TSRUN, uniqueId } from '../helpers';
import { openBundleToUserns, withUserns } from '../security-helpers';

if (!IS_ROOT || !referenceInstalled()) {
  t.plan(0, 'needs root and the reference runtime');
  process.exit(0);
}

const CAPS = ['CAP_SYS_ADMIN', 'CAP_DAC_OVERRIDE', 'CAP_CHOWN', 'CAP_FOWNER'];

function must(args: string[]): void {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

/**
 * Host mounts in a private tmpfs of the test's own: `ro/` a read-only,
 * nosuid bind of a tmpfs with a world-writable directory; `tree/` a tmpfs
 * whose `sub/` holds a file that a second tmpfs, mounted on `sub/`, hides.
 */
function hostMounts(t: any): string {
  const base = tempDir(t, 'tsrun-locks-');
  fs.chmodSync(base, 0o755);
  must(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'locks', base]);
  t.teardown(() => spawnSync('umount', ['-R', '-l', base]));
  must(['mount', '--make-private', base]);
  const ro = path.join(base, 'ro');
  fs.mkdirSync(ro);
  must(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'ro-src', ro]);
  fs.mkdirSync(path.join(ro, 'w'), { mode: 0o777 });
  fs.chmodSync(path.join(ro, 'w'), 0o777);
  must(['mount', '-o', 'remount,bind,ro,nosuid', ro]);
  const tree = path.join(base, 'tree');
  fs.mkdirSync(tree);
  must(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tree-src', tree]);
  fs.mkdirSync(path.join(tree, 'sub'), { mode: 0o755 });
  fs.writeFileSync(path.join(tree, 'sub', 'hidden'), 'under the mount\n', { mode: 0o644 });
  must(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'cover', path.join(tree, 'sub')]);
  return base;
}

const PROBE = [
  'mount -o remount,bind,ro,suid /ro 2>/dev/null && echo NOSUID-CLEARED || echo nosuid-locked',
  'mount -o remount,bind,rw,nosuid /ro 2>/dev/null && echo RO-CLEARED || echo ro-locked',
  'touch /ro/w/x 2>/dev/null && echo WROTE || echo write-refused',
  'umount /tree/sub 2>/dev/null && echo UNMOUNTED || echo umount-refused',
  'cat /tree/sub/hidden 2>/dev/null || echo hidden-unseen',
].join('; ');

/** A user-namespaced container with CAP_SYS_ADMIN that binds `ro/` and rbinds `tree/` of `base`, running PROBE under both runtimes. */
function probeBoth(t: any, base: string, label: string): ReturnType<typeof underBoth> {
  const bundle = makeBundle(
    t,
    (c) => {
      withUserns(c);
      c.process!.capabilities = { bounding: CAPS, effective: CAPS, permitted: CAPS };
      c.mounts!.push(
        { destination: '/ro', type: 'bind', source: path.join(base, 'ro'), options: ['bind'] },
        { destination: '/tree', type: 'bind', source: path.join(base, 'tree'), options: ['rbind'] },
      );
    },
    ['/bin/sh', '-c', PROBE],
  );
  openBundleToUserns(bundle);
  spawnSync('chown', ['-R', '100000:100000', bundle.rootfs]);
  const id = uniqueId(label);
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same(leftovers(bundle, `${id}-tsrun`), []);
  return r;
}

t.test('a user-namespaced container cannot undo the host flags or submounts of its binds', async (t) => {
  const base = hostMounts(t);
  const r = probeBoth(t, base, 'locks');
  t.equal(
    r.tsrun.stdout,
    'nosuid-locked\nro-locked\nwrite-refused\numount-refused\nhidden-unseen\n',
    `tsrun: ${r.tsrun.stderr}`,
  );
  t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.reference.stderr}`);
  t.same(fs.readdirSync(path.join(base, 'ro', 'w')), [], 'nothing written to the read-only host mount');
});

t.test('a source the container root cannot reach still binds, and keeps its locks', async (t) => {
  const base = hostMounts(t);
  fs.chmodSync(base, 0o700); // host root only: the container's root cannot traverse it
  const r = probeBoth(t, base, 'locks-hidden');
  t.equal(
    r.tsrun.stdout,
    'nosuid-locked\nro-locked\nwrite-refused\numount-refused\nhidden-unseen\n',
    `tsrun: ${r.tsrun.stderr}`,
  );
  t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.reference.stderr}`);
});

/** Processes (zombies too) of a session: what a command started with setsid left behind. */
function sessionMembers(sid: number): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[3]) === sid) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

t.test('a bind the server cannot take fails with its reason, and leaves no process behind', async (t) => {
  const base = hostMounts(t);
  const bundle = makeBundle(
    t,
    (c) => {
      withUserns(c);
      // Not rbind: the tree's submount is locked, so the kernel refuses (runc fails too).
      c.mounts!.push({ destination: '/tree', type: 'bind', source: path.join(base, 'tree'), options: ['bind'] });
    },
    ['/bin/true'],
  );
  openBundleToUserns(bundle);
  spawnSync('chown', ['-R', '100000:100000', bundle.rootfs]);
  const id = uniqueId('locks-fail');
  cleanupBoth(t, bundle, id);
  // In a session of its own (setsid execs in place: the session id is the shell's pid).
  const r = runCommand([
    '/bin/sh',
    '-c',
    `echo $$ >&2; exec setsid ${TSRUN} --root ${bundle.root} run -b ${bundle.dir} ${id}`,
  ]);
  const sid = Number(r.stderr.split('\n')[0]);
  t.ok(sid > 1, 'the session id');
  t.same(sessionMembers(sid), [], 'no helper, server or zombie of the session outlives tsrun');
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    new RegExp(`tsrun: run ${id}: bind ${path.join(base, 'tree')}: .*rbind`),
    'the reason, naming the source',
  );
  const ref = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.equal(ref.reference.status, 1, 'the reference refuses it too');
  t.same(leftovers(bundle, id), []);
});
