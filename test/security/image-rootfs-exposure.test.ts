/**
 * Issue 14, finding 1: an image container's rootfs reachable by every
 * local user, with setuid and devices live (the class of moby
 * CVE-2021-41091 and containerd CVE-2021-41103).
 *
 * tsrun used to mount the overlay in the host's mount namespace at
 * <root>/<id>/bundle/rootfs, without nosuid or nodev, under directories
 * others could traverse (0711/0755), with config.json 0644.  As `nobody` on
 * the host, a setuid-root binary of the image ran with euid 0, so did one
 * the container (root inside) dropped into its rootfs, a 0666 device node
 * from the image opened, and -e SECRET values were readable.
 *
 * Here the directories above --root and the store are 0755, as /run and
 * /var/lib are, so only tsrun's own modes and mounts keep `nobody` out.
 * For run (the init writes a setuid file) and exec (an exec'd process
 * does), on both overlay paths (new mount API and the legacy mount(2)):
 *  - the overlay is in no mount table of the host, only the container's;
 *  - `nobody` cannot run the image's setuid binary, nor one the container
 *    wrote, nor open the image's device node, through any host path that
 *    leads to them (the state dir, the store's layers, the upper);
 *  - --root, the state dir, the bundle are 0700, config.json 0600, the
 *    store's directories 0700 even when they existed with other modes;
 *  - inside the container, setuid still works (the overlay is not nosuid).
 * And for a plain bundle: --root and its state dir are 0700, nothing of
 * the container is mounted in the host's namespace.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { CHECKER } from '../../src/lib/native';
import {
  cleanupContainer,
  IS_ROOT,
  makeBundle,
  type RunResult,
  runCommand,
  tarOf,
  tempDir,
  tsrun,
  uniqueId,
} from '../helpers';
import { differsOnPurpose } from '../compat-helpers';
import { baseLayer, dockerArchive, image, imageOf } from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

/**
 * Run argv as nobody on the host.  runuser drops every capability before
 * it execs; setpriv --reuid would not do here: it keeps root's
 * capabilities (PR_SET_KEEPCAPS) until the execve itself, so its exec
 * still passes directories nobody may search.
 */
function asNobody(argv: string[]): RunResult {
  return runCommand(['runuser', '-u', 'nobody', '--', ...argv]);
}

/** The euid a setuid checker reports when `nobody` runs it at `file`, or undefined if it cannot be run. */
function euidAsNobody(file: string): number | undefined {
  const r = asNobody([file, 'report']);
  if (r.status !== 0) return undefined;
  try {
    return JSON.parse(r.stdout).euid;
  } catch {
    return undefined;
  }
}

const mode = (p: string): string => (fs.statSync(p).mode & 0o7777).toString(8);

/** An image with a setuid-root checker and a 0666 device node (the null device) beside busybox. */
async function hostileImage(): Promise<Buffer> {
  const extra = await tarOf([
    { name: 'usr/', type: 'directory', mode: 0o755 },
    { name: 'usr/local/', type: 'directory', mode: 0o755 },
    { name: 'usr/local/bin/', type: 'directory', mode: 0o755 },
    {
      name: 'usr/local/bin/suid-checker',
      type: 'file',
      mode: 0o4755,
      uid: 0,
      gid: 0,
      content: fs.readFileSync(CHECKER),
    },
    { name: 'var/', type: 'directory', mode: 0o755 },
    { name: 'var/open-device', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
  ]);
  return dockerArchive(imageOf([baseLayer(), extra], { Cmd: ['/bin/sh'] }), 'hostile/suid:1');
}

/** Every host path under `dirs` whose name is `name` (a walk as root, not following symlinks). */
function hostPathsNamed(dirs: string[], name: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 12) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.name === name) out.push(p);
      if (e.isDirectory()) walk(p, depth + 1);
    }
  };
  for (const d of dirs) walk(d, 0);
  return out;
}

for (const legacy of [false, true]) {
  const label = legacy ? 'legacy mount(2) path' : 'new mount API path';
  t.test(`image container (${label}): nothing of its rootfs is reachable by another host user`, async (t) => {
    const work = tempDir(t, 'tsrun-exposure-');
    fs.chmodSync(work, 0o755); // like /run and /var/lib: anyone may traverse it
    const store = path.join(work, 'store');
    const root = path.join(work, 'state');
    // A store whose directories someone made with loose modes beforehand.
    fs.mkdirSync(path.join(store, 'layers'), { recursive: true, mode: 0o755 });
    fs.chmodSync(store, 0o755);
    fs.chmodSync(path.join(store, 'layers'), 0o755);
    fs.writeFileSync(path.join(work, 'img.tar'), await hostileImage());
    const imp = image(store, ['import', path.join(work, 'img.tar')]);
    t.equal(imp.status, 0, `import: ${imp.stderr}`);

    const env = legacy ? { TSRUN_TEST_OVERLAY_LEGACY: '1' } : undefined;
    const id = uniqueId('expose');
    cleanupContainer(t, root, id);
    const init =
      'cp /usr/local/bin/suid-checker /tmp/init-suid && chmod 4755 /tmp/init-suid && touch /tmp/init-done; exec sleep 1000';
    const run = tsrun(
      root,
      [
        'run',
        '--detach',
        '--image',
        'hostile/suid:1',
        '--store',
        store,
        '-e',
        'SECRET=hunter2',
        '--user',
        '0',
        id,
        '--',
        '/bin/sh',
        '-c',
        init,
      ],
      { env },
    );
    t.equal(run.status, 0, `run --image: ${run.stderr}`);
    const pid = JSON.parse(tsrun(root, ['state', id]).stdout).pid as number;
    const ex = tsrun(root, [
      'exec',
      id,
      '/bin/sh',
      '-c',
      'cp /usr/local/bin/suid-checker /tmp/exec-suid && chmod 4755 /tmp/exec-suid && ls /tmp',
    ]);
    t.equal(ex.status, 0, `exec: ${ex.stderr}`);
    t.match(ex.stdout, /init-done/, 'the init wrote its setuid file');

    // Mount tables: the host's (as nobody reads it) has no overlay; the container's has it.
    const hostMounts = asNobody(['cat', '/proc/self/mountinfo']);
    t.equal(hostMounts.status, 0);
    t.notMatch(hostMounts.stdout, /tsrun-rootfs-/, "the overlay is not in the host's mount namespace");
    t.match(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'), /tsrun-rootfs-/, "it is in the container's");

    // Every host path to the three files, as root finds them: none usable by nobody.
    const places = [root, store];
    const targets = ['suid-checker', 'init-suid', 'exec-suid'].flatMap((n) => hostPathsNamed(places, n));
    t.ok(
      targets.some((p) => p.includes('/layers/')),
      `the image's binary is on the host in its layer: ${targets.join(' ')}`,
    );
    t.ok(
      targets.some((p) => p.endsWith('exec-suid')),
      "the exec's file is on the host in the upper",
    );
    for (const file of targets) t.equal(euidAsNobody(file), undefined, `nobody cannot run ${file}`);
    // The paths the old layout had, whether or not they exist now.
    for (const name of ['usr/local/bin/suid-checker', 'tmp/init-suid', 'tmp/exec-suid']) {
      const p = path.join(root, id, 'bundle', 'rootfs', name);
      t.equal(euidAsNobody(p), undefined, `nobody cannot run ${p}`);
    }
    for (const dev of [
      ...hostPathsNamed(places, 'open-device'),
      path.join(root, id, 'bundle', 'rootfs', 'var', 'open-device'),
    ]) {
      t.not(asNobody(['head', '-c', '1', dev]).status, 0, `nobody cannot open the image's device node at ${dev}`);
    }
    const config = path.join(root, id, 'bundle', 'config.json');
    t.not(asNobody(['cat', config]).status, 0, 'nobody cannot read the generated config.json (with SECRET)');

    t.equal(mode(root), '700', '--root is 0700');
    t.equal(mode(path.join(root, id)), '700', 'the state dir is 0700');
    t.equal(mode(path.join(root, id, 'bundle')), '700', 'the generated bundle is 0700');
    t.equal(mode(config), '600', 'its config.json is 0600');
    t.equal(mode(path.join(root, id, 'state.json')), '600', 'state.json is 0600');
    for (const sub of ['layers', 'containers', 'blobs', 'tmp'])
      t.equal(mode(path.join(store, sub)), '700', `the store's ${sub}/ is 0700`);

    // Inside, setuid works as it should: the overlay is not nosuid there
    // (for a process without no_new_privs, which `tsrun spec` sets by default).
    const rootMount = fs
      .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => / - overlay tsrun-rootfs-/.test(l))!;
    t.notMatch(
      rootMount.split(' ')[5],
      /nosuid/,
      `the container's rootfs mount is not nosuid: ${rootMount.split(' ')[5]}`,
    );
    t.match(
      rootMount.split(' ')[5],
      /nodev/,
      `it is nodev, as containers/storage mounts overlays: ${rootMount.split(' ')[5]}`,
    );
    const proc = path.join(work, 'suid-process.json');
    fs.writeFileSync(
      proc,
      JSON.stringify({
        args: ['/usr/local/bin/suid-checker', 'report'],
        cwd: '/',
        env: ['PATH=/bin'],
        user: { uid: 1000, gid: 1000 },
        noNewPrivileges: false,
      }),
    );
    const inside = tsrun(root, ['exec', '--process', proc, id]);
    t.equal(inside.status, 0, inside.stderr);
    t.equal(JSON.parse(inside.stdout).euid, 0, 'a setuid-root binary of the image gives euid 0 inside the container');

    t.equal(tsrun(root, ['delete', '--force', id]).status, 0);
    t.same(fs.readdirSync(path.join(store, 'containers')), [], 'delete removed the upper');
  });
}

for (const legacy of [false, true]) {
  const label = legacy ? 'legacy mount(2) path' : 'new mount API path';
  t.test(
    `image container as nobody (${label}): the host's nobody, walking /proc/PID/root, opens no device node of its rootfs`,
    async (t) => {
      // A container process of uid 65534 without a user namespace is, to the
      // kernel, the host's nobody: nobody may walk its /proc/PID/root.  The
      // image's 0666 node, and one the container makes in its rootfs, opened
      // the host device there, outside the container's device cgroup.
      const work = tempDir(t, 'tsrun-exposure-uid-');
      const store = path.join(work, 'store');
      const root = path.join(work, 'state');
      fs.writeFileSync(path.join(work, 'img.tar'), await hostileImage());
      t.equal(image(store, ['import', path.join(work, 'img.tar')]).status, 0);
      const env = legacy ? { TSRUN_TEST_OVERLAY_LEGACY: '1' } : undefined;
      const id = uniqueId('expose-uid');
      cleanupContainer(t, root, id);
      const run = tsrun(
        root,
        [
          'run',
          '--detach',
          '--image',
          'hostile/suid:1',
          '--store',
          store,
          '--user',
          '65534',
          id,
          '--',
          '/bin/sleep',
          '1000',
        ],
        { env },
      );
      t.equal(run.status, 0, `run --image: ${run.stderr}`);
      const pid = JSON.parse(tsrun(root, ['state', id]).stdout).pid as number;
      t.equal(fs.statSync(`/proc/${pid}`).uid, 65534, "the init runs as the host's nobody");
      // The container (root, with CAP_MKNOD) makes a node of its own in its rootfs.
      const proc = path.join(work, 'mknod.json');
      const caps = ['CAP_MKNOD', 'CAP_CHOWN', 'CAP_FOWNER', 'CAP_DAC_OVERRIDE'];
      fs.writeFileSync(
        proc,
        JSON.stringify({
          args: ['/bin/sh', '-c', 'mknod /tmp/made c 1 3 && chmod 666 /tmp/made && ls -l /tmp/made'],
          cwd: '/',
          env: ['PATH=/bin'],
          user: { uid: 0, gid: 0 },
          capabilities: { bounding: caps, effective: caps, permitted: caps },
        }),
      );
      const made = tsrun(root, ['exec', '--process', proc, id]);
      t.equal(made.status, 0, `the container makes /tmp/made: ${made.stderr}`);
      t.equal(
        asNobody(['ls', `/proc/${pid}/root/var`]).status,
        0,
        "nobody can walk the container's root (the kernel's rule for its own uid)",
      );
      for (const node of ['var/open-device', 'tmp/made']) {
        const r = asNobody(['head', '-c', '1', `/proc/${pid}/root/${node}`]);
        t.not(r.status, 0, `nobody cannot open /proc/${pid}/root/${node}`);
        t.match(r.stderr, /Permission denied/, `refused by the mount (nodev): ${r.stderr.trim()}`);
      }
      const suid = euidAsNobody(`/proc/${pid}/root/usr/local/bin/suid-checker`);
      t.equal(
        suid,
        65534,
        "the image's setuid binary, run by nobody through /proc/PID/root, gives no privilege (setuid holds only in the mount's own namespace)",
      );
      t.equal(tsrun(root, ['delete', '--force', id]).status, 0);
    },
  );
}

t.test(
  'plain bundle: --root and the state dir are 0700, nothing of the container is mounted on the host',
  async (t) => {
    differsOnPurpose(t, 'state-dir-mode');
    const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
    fs.chmodSync(bundle.dir, 0o755);
    const id = uniqueId('expose-plain');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]).status, 0);
    t.equal(mode(bundle.root), '700', '--root is 0700');
    t.equal(mode(path.join(bundle.root, id)), '700', 'the state dir is 0700');
    t.equal(mode(path.join(bundle.root, id, 'state.json')), '600');
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(bundle.dir));
    t.same(mounts, [], "no mount of the container's in the host's namespace");
    t.not(asNobody(['ls', path.join(bundle.root, id)]).status, 0, 'nobody cannot list the state dir');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  },
);

t.test('tsrun bundle writes config.json 0600 (its environment may hold secrets)', async (t) => {
  const work = tempDir(t, 'tsrun-exposure-bundle-');
  const store = path.join(work, 'store');
  fs.writeFileSync(path.join(work, 'img.tar'), await hostileImage());
  t.equal(image(store, ['import', path.join(work, 'img.tar')]).status, 0);
  const dir = path.join(work, 'b');
  const r = tsrun('/tmp', ['bundle', '--store', store, '-e', 'SECRET=hunter2', 'hostile/suid:1', dir]);
  t.equal(r.status, 0, r.stderr);
  t.equal(mode(path.join(dir, 'config.json')), '600');
  const ls = spawnSync('ls', [path.join(dir, 'rootfs')]);
  t.equal(ls.stdout.toString(), '', 'the rootfs is an empty mount point');
});
