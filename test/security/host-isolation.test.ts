/**
 * Host isolation beyond the named CVEs:
 *  (a) container root cannot change the host's /dev/null (chmod, chown,
 *      write), with and without a user namespace, for run and exec;
 *  (b) the container's /proc/self/mountinfo shows only what the config
 *      mounts: no /work, no /sys/fs/cgroup..., no host /tmp, no host path as
 *      a mount root besides the rootfs (run and exec);
 *  (c) mount destinations with ".." or through a rootfs symlink that
 *      climbs out ("evil -> ../../../../..") land inside the rootfs;
 *  (d) exec --user 1000:1000 trying to chmod/chown /dev/null changes
 *      nothing: the host's /dev/null stays root-owned char 1:3.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { IS_ROOT, leftovers, makeBundle, tsrun, uniqueId, cleanupContainer } from '../helpers';
import {
  devNullState,
  HOST_DEV_NULL,
  hostDir,
  openBundleToUserns,
  parseMountinfo,
  restoreDevNull,
  runningContainer,
  withUserns,
} from '../security-helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

// Put it back if a failing run changed it; the assertions below report it.
t.teardown(restoreDevNull);

const ATTACK = 'chmod 777 /dev/null; chown 1000:1000 /dev/null; echo x > /dev/null; ls -ln /dev/null';

for (const [name, mutate] of [
  ['without a user namespace', () => {}],
  ['with a user namespace (root = host 100000)', withUserns],
] as const) {
  t.test(`(a) container root cannot change the host's /dev/null, ${name}`, async (t) => {
    t.same(devNullState(), HOST_DEV_NULL, 'before: root:root 0666 char 1:3');
    const bundle = makeBundle(t, mutate as (c: Config) => void, ['/bin/sh', '-c', ATTACK]);
    openBundleToUserns(bundle);
    const id = uniqueId('devnull');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.equal(r.status, 0, `run: ${r.stderr}`);
    t.match(r.stdout, /^c.* \/dev\/null$/m, "the container's /dev/null is still a char device");
    t.same(devNullState(), HOST_DEV_NULL, 'after run: the host /dev/null is unchanged');
    t.same(leftovers(bundle, id), []);

    const running = runningContainer(t, mutate as (c: Config) => void, ['/bin/sleep', '1000'], openBundleToUserns);
    const e = tsrun(running.bundle.root, ['exec', running.id, '/bin/sh', '-c', ATTACK]);
    t.equal(e.status, 0, `exec: ${e.stderr}`);
    t.same(devNullState(), HOST_DEV_NULL, 'after exec: the host /dev/null is unchanged');
    t.equal(tsrun(running.bundle.root, ['delete', '--force', running.id]).status, 0);
    t.same(leftovers(running.bundle, running.id), []);
  });
}

t.test("(d) exec --user 1000:1000 cannot change the container's or the host's /dev/null", async (t) => {
  for (const mutate of [() => {}, withUserns]) {
    const { bundle, id } = runningContainer(
      t,
      mutate as (c: Config) => void,
      ['/bin/sleep', '1000'],
      openBundleToUserns,
    );
    const e = tsrun(bundle.root, ['exec', '--user', '1000:1000', id, '/bin/sh', '-c', `${ATTACK}; id -u`]);
    t.equal(e.status, 0, `exec: ${e.stderr}`);
    t.match(e.stdout, /^1000$/m, 'ran as uid 1000');
    t.match(
      e.stdout,
      /^crw-rw-rw-\s+1 (0|65534)\s+(0|65534)\s+1,\s+3 .*\/dev\/null$/m,
      "the container's /dev/null is still root's 0666 char 1:3",
    );
    t.match(e.stderr, /Operation not permitted/, 'chmod/chown were refused');
    t.same(devNullState(), HOST_DEV_NULL, 'the host /dev/null is unchanged');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
    t.same(leftovers(bundle, id), []);
  }
});

t.test("(b) the container's mountinfo shows only the configured mounts", async (t) => {
  const expected = ['/', '/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys'];
  const check = (what: string, stdout: string, rootfs: string): void => {
    const mounts = parseMountinfo(stdout);
    t.same(mounts.map((m) => m.mountpoint).sort(), [...expected].sort(), `${what}: exactly the config's mount points`);
    t.same(
      mounts.filter(
        (m) =>
          /^\/(work|tmp|run|home|root|boot|var|etc|usr)(\/|$)/.test(m.mountpoint) ||
          m.mountpoint.startsWith('/sys/fs/cgroup'),
      ),
      [],
      `${what}: no host mount point (no /work, /sys/fs/cgroup..., /tmp)`,
    );
    // Fresh filesystems have root "/"; the only host path is the rootfs itself.
    t.same(
      mounts.filter((m) => m.root !== '/').map((m) => `${m.mountpoint} <- ${m.root}`),
      [`/ <- ${rootfs}`],
      `${what}: no host directory is mounted in besides the rootfs`,
    );
  };
  const bundle = makeBundle(t, () => {}, ['/bin/cat', '/proc/self/mountinfo']);
  const id = uniqueId('mountinfo');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.equal(r.status, 0, r.stderr);
  check('run', r.stdout, bundle.rootfs);
  t.same(leftovers(bundle, id), []);

  const running = runningContainer(t);
  const e = tsrun(running.bundle.root, ['exec', running.id, '/bin/cat', '/proc/self/mountinfo']);
  t.equal(e.status, 0, e.stderr);
  check('exec', e.stdout, running.bundle.rootfs);
  t.equal(tsrun(running.bundle.root, ['delete', '--force', running.id]).status, 0);
  t.same(leftovers(running.bundle, running.id), []);
});

t.test('(c) mount destinations with ".." or through a climbing symlink land inside the rootfs', async (t) => {
  const u = `${process.pid}-${Date.now()}`;
  const src = hostDir(t, 'tsrun-escape-src-');
  fs.writeFileSync(path.join(src, 'bound'), 'bound');
  // Where an escape would land on the host: all must stay absent.
  const hostPaths = [`/tmp/escape-${u}`, `/tmp/escape-bind-${u}`, `/escape-sym-${u}`, `/escape-abs-${u}`];
  t.teardown(() => hostPaths.forEach((p) => fs.rmSync(p, { recursive: true, force: true })));
  const bundle = makeBundle(
    t,
    (c) => {
      c.mounts!.push(
        { destination: `/../../../../tmp/escape-${u}`, type: 'tmpfs', source: 'esc1', options: ['size=1m'] },
        { destination: `/../../../../tmp/escape-bind-${u}`, type: 'bind', source: src, options: ['rbind'] },
        { destination: `/evil/escape-sym-${u}`, type: 'tmpfs', source: 'esc2', options: ['size=1m'] },
        { destination: `/evil-abs/escape-abs-${u}`, type: 'tmpfs', source: 'esc3', options: ['size=1m'] },
      );
    },
    ['/bin/sh', '-c', 'cat /proc/self/mountinfo; echo ===; ls /tmp /'],
  );
  // Relative to the rootfs on the host, this climbs to the host's /.
  fs.symlinkSync('../../../../../../../..', path.join(bundle.rootfs, 'evil'));
  fs.symlinkSync('/', path.join(bundle.rootfs, 'evil-abs'));
  t.same(
    hostPaths.filter((p) => fs.existsSync(p)),
    [],
    'before: no such host paths',
  );
  const id = uniqueId('escape');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run: ${r.stderr}`);
  const mounts = parseMountinfo(r.stdout.split('===\n')[0]);
  const at = (source: string): string[] => mounts.filter((m) => m.source === source).map((m) => m.mountpoint);
  t.same(at('esc1'), [`/tmp/escape-${u}`], '"/../../../../tmp/x" is /tmp/x of the container');
  t.ok(
    mounts.some((m) => m.mountpoint === `/tmp/escape-bind-${u}` && m.root === src),
    'the bind with ".." too',
  );
  t.same(at('esc2'), [`/escape-sym-${u}`], 'through "evil -> ../../..": the container\'s /');
  t.same(at('esc3'), [`/escape-abs-${u}`], 'through "evil-abs -> /": the container\'s /');
  t.same(
    hostPaths.filter((p) => fs.existsSync(p)),
    [],
    'after: none of the host paths appeared',
  );
  for (const p of hostPaths)
    t.ok(fs.statSync(path.join(bundle.rootfs, p)).isDirectory(), `rootfs${p} is where it landed`);
  t.same(leftovers(bundle, id), []);
});
