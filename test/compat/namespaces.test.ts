/**
 * Issue 15, item 5: without a mount namespace entry, or with the mount
 * namespace joined by path, runc runs the container; tsrun refused ("a new
 * mount namespace is required").  Compared with runc:
 *  - no mount namespace: the container shares the host's mounts; its own
 *    are made there under its rootfs and its root is a chroot.  tsrun
 *    leaves the host's "/" propagation alone, detaches those mounts at
 *    delete, and an exec enters the container's root; runc makes "/"
 *    rslave, leaves its mounts in the host for good, and runs an exec in
 *    the host's root (docs/differences-from-runc.md, "host-mount-namespace");
 *  - masked and read-only paths need a mount namespace: refused by both;
 *  - a mount namespace joined by path: used as runc uses it.
 * docs/features.md ("Namespaces") says what sharing the host's mounts means for safety.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { IS_ROOT, makeBundle, mountsUnder, tempDir, uniqueId } from '../helpers';
import { cleanupBoth, differsOnPurpose, referenceInstalled, RUNTIMES, seen, under, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const rootLine = (): string =>
  fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === '/') ?? '';
// runc makes the host's "/" rslave without a mount namespace: only let it
// where that changes nothing (a private "/"), so the test cannot alter the host.
const rootShared = /\sshared:\d+/.test(rootLine());

const noMountNs = (c: Config): void => {
  c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'mount');
  c.linux!.maskedPaths = [];
  c.linux!.readonlyPaths = [];
};

t.test('no mount namespace: it runs, as under runc; tsrun leaves nothing of it in the host', async (t) => {
  differsOnPurpose(t, 'host-mount-namespace');
  const before = rootLine();
  const results: Record<string, { run: unknown; exec: string; left: number }> = {};
  for (const rt of RUNTIMES) {
    if (rt.name === 'reference' && rootShared) {
      t.comment('the host\'s "/" is shared: runc would make it rslave, so it is not run here');
      continue;
    }
    // A bundle each: runc's mounts stay in the host, under its rootfs.
    const bundle = makeBundle(t, noMountNs, ['/bin/sh', '-c', 'ls /; cat /etc/hostname-file 2>/dev/null; echo done']);
    fs.writeFileSync(path.join(bundle.rootfs, 'etc', 'hostname-file'), 'inside\n');
    t.teardown(() => {
      spawnSync('umount', ['-R', '-l', bundle.rootfs]);
    });
    const id = uniqueId('nomntns');
    cleanupBoth(t, bundle, id);
    const run = under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    const running = makeBundle(t, noMountNs, ['/bin/sleep', '1000']);
    t.teardown(() => {
      spawnSync('umount', ['-R', '-l', running.rootfs]);
    });
    const rid = uniqueId('nomntnsx');
    cleanupBoth(t, running, rid);
    t.equal(
      under(rt, running, rid, ['run', '--detach', '-b', running.dir, '%ID%']).status,
      0,
      `${rt.name}: run --detach`,
    );
    const exec = under(rt, running, rid, ['exec', '%ID%', '/bin/ls', '/']).stdout;
    under(rt, running, rid, ['delete', '--force', '%ID%']);
    results[rt.name] = { run: seen(run), exec, left: mountsUnder(bundle.dir).length + mountsUnder(running.dir).length };
  }
  const ours = results.tsrun;
  t.match(ours.run, { status: 0, stdout: /^bin\n(.*\n)*inside\ndone\n$/ }, 'runs in its rootfs, a chroot');
  t.equal(ours.left, 0, 'its mounts in the host are detached once it is deleted');
  t.equal(
    ours.exec,
    fs
      .readdirSync(path.join(makeBundle(t).rootfs))
      .sort()
      .join('\n') + '\n',
    "exec runs in the container's root",
  );
  t.equal(rootLine(), before, 'the host\'s "/" mount is as it was (propagation untouched)');
  if (results.reference) {
    t.same(ours.run, results.reference.run, 'run: what the reference prints');
    t.ok(results.reference.left > 0, `the reference leaves ${results.reference.left} mounts in the host`);
    t.not(results.reference.exec, ours.exec, "the reference's exec runs in the host's root");
  }
});

t.test('masked or read-only paths without a mount namespace: refused by both', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      noMountNs(c);
      c.linux!.maskedPaths = ['/proc/kcore'];
    },
    ['/bin/true'],
  );
  const id = uniqueId('nomntnsmask');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same({ reference: r.reference.status, tsrun: r.tsrun.status }, { reference: 1, tsrun: 1 });
  t.match(r.tsrun.stderr, /linux\.maskedPaths: needs a mount namespace of the container/);
  t.equal(mountsUnder(bundle.dir).length, 0, 'nothing mounted');
});

t.test('a mount namespace joined by path: used as runc uses it', async (t) => {
  const dir = tempDir(t, 'tsrun-mntns-');
  spawnSync('mount', ['--bind', dir, dir]);
  spawnSync('mount', ['--make-private', dir]);
  t.teardown(() => {
    spawnSync('umount', ['-R', '-l', dir]);
  });
  const nsFile = path.join(dir, 'mnt');
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces = [
        ...c.linux!.namespaces!.filter((n) => n.type !== 'mount'),
        { type: 'mount', path: nsFile },
      ];
    },
    ['/bin/sh', '-c', 'ls / | head -3; grep -c . /proc/self/mountinfo > /dev/null && echo mounts'],
  );
  const id = uniqueId('joinmnt');
  cleanupBoth(t, bundle, id);
  const outputs: Record<string, unknown> = {};
  for (const rt of RUNTIMES) {
    fs.writeFileSync(nsFile, '');
    t.equal(
      spawnSync('unshare', [`--mount=${nsFile}`, '--propagation', 'private', 'true']).status,
      0,
      'a mount namespace kept in a file',
    );
    outputs[rt.name] = seen(under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%']));
    spawnSync('umount', ['-l', nsFile]);
  }
  t.same(outputs.tsrun, outputs.reference, 'as under the reference');
  t.match(outputs.tsrun, { status: 0, stdout: /^bin\ndev\netc\nmounts\n$/ });
});

t.test(
  "no mount namespace, a rootfs that is a mount of the caller's: delete takes only the container's mounts",
  async (t) => {
    const bundle = makeBundle(t, noMountNs, ['/bin/sleep', '1000']);
    spawnSync('mount', ['--bind', bundle.rootfs, bundle.rootfs]);
    t.teardown(() => {
      spawnSync('umount', ['-R', '-l', bundle.rootfs]);
    });
    const before = mountsUnder(bundle.dir);
    const id = uniqueId('nomntnsown');
    cleanupBoth(t, bundle, id);
    const rt = RUNTIMES[1];
    t.equal(under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status, 0, 'run --detach');
    t.ok(mountsUnder(bundle.dir).length > before.length, "the container's mounts are in the host's namespace");
    t.equal(under(rt, bundle, id, ['delete', '--force', '%ID%']).status, 0, 'delete --force');
    t.same(mountsUnder(bundle.dir), before, "the caller's own mount of the rootfs is still there, nothing else");
  },
);

t.test(
  "no mount namespace: a create killed before it mounted anything leaves the caller's rootfs mount alone at delete",
  async (t) => {
    const bundle = makeBundle(t, noMountNs, ['/bin/sleep', '1000']);
    spawnSync('mount', ['--bind', bundle.rootfs, bundle.rootfs]);
    t.teardown(() => {
      spawnSync('umount', ['-R', '-l', bundle.rootfs]);
    });
    const before = mountsUnder(bundle.dir);
    const id = uniqueId('nomntnscrash');
    cleanupBoth(t, bundle, id);
    const rt = RUNTIMES[1];
    // Killed once the record is saved, before the helper runs: the record names the rootfs, nothing is mounted.
    const crashed = under(rt, bundle, id, ['create', '-b', bundle.dir, '%ID%'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TSRUN_TEST_CRASH_AT: 'create:recorded' },
    });
    t.not(crashed.status, 0, 'create was killed');
    t.equal(under(rt, bundle, id, ['delete', '--force', '%ID%']).status, 0, 'delete --force of what it left');
    t.same(mountsUnder(bundle.dir), before, "the caller's own mount of the rootfs is still there");
  },
);

t.test('no mount namespace, the bundle reached through a symlink: delete still detaches every mount', async (t) => {
  const bundle = makeBundle(t, noMountNs, ['/bin/sleep', '1000']);
  const link = `${bundle.dir}-link`;
  fs.symlinkSync(bundle.dir, link);
  t.teardown(() => {
    fs.rmSync(link, { force: true });
    spawnSync('umount', ['-R', '-l', bundle.rootfs]);
  });
  const id = uniqueId('nomntnslink');
  cleanupBoth(t, bundle, id);
  const rt = RUNTIMES[1];
  t.equal(under(rt, bundle, id, ['run', '--detach', '-b', link, '%ID%']).status, 0, 'run --detach -b <symlink>');
  t.ok(mountsUnder(bundle.dir).length > 0, 'its mounts are in the host (under the real path)');
  t.equal(under(rt, bundle, id, ['delete', '--force', '%ID%']).status, 0, 'delete --force');
  t.same(mountsUnder(bundle.dir), [], 'none left');
});

t.test('no mount namespace: a mount made over the rootfs after create is never taken by delete', async (t) => {
  const bundle = makeBundle(t, noMountNs, ['/bin/sleep', '1000']);
  t.teardown(() => {
    spawnSync('umount', ['-R', '-l', bundle.rootfs]);
  });
  const id = uniqueId('nomntnscover');
  cleanupBoth(t, bundle, id);
  const rt = RUNTIMES[1];
  t.equal(under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status, 0, 'run --detach');
  t.equal(
    spawnSync('mount', ['-t', 'tmpfs', 'callers-cover', bundle.rootfs]).status,
    0,
    'the caller mounts over the rootfs',
  );
  const refused = under(rt, bundle, id, ['delete', '--force', '%ID%']);
  t.equal(refused.status, 1, 'delete fails while it is covered');
  t.match(
    refused.stderr,
    new RegExp(`${bundle.rootfs}: the container's mounts are covered by mount \\d+`),
    'naming the covering mount',
  );
  t.ok(
    mountsUnder(bundle.dir).some((m) => m === bundle.rootfs),
    "the caller's mount is still there",
  );
  t.equal(spawnSync('umount', [bundle.rootfs]).status, 0, "the caller's mount was untouched: it unmounts");
  t.equal(under(rt, bundle, id, ['delete', '--force', '%ID%']).status, 0, 'then delete works');
  t.same(mountsUnder(bundle.dir), [], 'nothing left');
});

t.test('no mount namespace: two containers on one rootfs, each delete takes only its own mounts', async (t) => {
  const bundle = makeBundle(t, noMountNs, ['/bin/sleep', '1000']);
  t.teardown(() => {
    spawnSync('umount', ['-R', '-l', bundle.rootfs]);
  });
  const [first, second] = [uniqueId('nomntnsa'), uniqueId('nomntnsb')];
  cleanupBoth(t, bundle, first);
  cleanupBoth(t, bundle, second);
  const rt = RUNTIMES[1];
  t.equal(under(rt, bundle, first, ['run', '--detach', '-b', bundle.dir, '%ID%']).status, 0, 'the first runs');
  const firstOnly = mountsUnder(bundle.dir);
  t.equal(
    under(rt, bundle, second, ['run', '--detach', '-b', bundle.dir, '%ID%']).status,
    0,
    'the second runs on the same rootfs',
  );
  const firstDelete = under(rt, bundle, first, ['delete', '--force', '%ID%']);
  t.equal(firstDelete.status, 1, "the first's delete fails: the second's mounts lie on top of its own");
  t.equal(under(rt, bundle, second, ['exec', '%ID%', '/bin/true']).status, 0, 'the second still runs in its rootfs');
  t.equal(under(rt, bundle, second, ['delete', '--force', '%ID%']).status, 0, 'the second deleted');
  t.same(mountsUnder(bundle.dir), firstOnly, "only the second's mounts went");
  t.equal(under(rt, bundle, first, ['delete', '--force', '%ID%']).status, 0, 'then the first deletes');
  t.same(mountsUnder(bundle.dir), [], 'nothing left');
});
