/**
 * Mount options beyond plain flags: tmpcopyup (the tmpfs starts with the
 * content it covers) and idmap/ridmap (the mount's files appear under
 * mapped ids).
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, leftovers, makeBundle, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

t.test('tmpcopyup: the tmpfs holds a copy of what it covers, and writes stay in the tmpfs', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.mounts!.push({ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'nosuid'] });
    },
    [
      '/bin/sh',
      '-c',
      'head -1 /etc/passwd; ls -l /etc/hostname | cut -c1-10; echo changed > /etc/hostname; grep -c " /etc tmpfs" /proc/mounts',
    ],
  );
  const id = uniqueId();
  const result = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  const rootfs = bundle.rootfs;
  t.equal(result.status, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  t.equal(lines[0], 'root:x:0:0:root:/root:/bin/sh', 'files of the covered directory are there');
  t.equal(lines[1], '-rw-r--r--', 'modes are kept');
  t.equal(lines[2], '1', '/etc is a tmpfs');
  t.not(
    fs.readFileSync(path.join(rootfs, 'etc', 'hostname'), 'utf8'),
    'changed\n',
    'the rootfs underneath is untouched',
  );
  t.same(leftovers(bundle, id), []);
});

function volume(t: Parameters<typeof tempDirOf>[0]): string {
  const vol = tempDirOf(t);
  fs.writeFileSync(path.join(vol, 'by-root'), 'r');
  fs.writeFileSync(path.join(vol, 'by-5'), 'f');
  fs.chownSync(path.join(vol, 'by-5'), 5, 5);
  return vol;
}

function statInside(bundleDir: string, root: string, file: string): { uid: number; gid: number } {
  const r = tsrun(root, ['run', '-b', bundleDir, uniqueId('idmap')]);
  if (r.status !== 0) throw new Error(`run failed: ${r.stderr}`);
  void file;
  return JSON.parse(r.stdout);
}

t.test("idmap: a bind mount shows its files under the mount's mappings; the source is unchanged", async (t) => {
  const vol = volume(t);
  for (const file of ['by-root', 'by-5']) {
    const bundle = makeBundle(
      t,
      (c) => {
        c.mounts!.push({
          destination: '/vol',
          type: 'bind',
          source: vol,
          options: ['bind', 'idmap'],
          uidMappings: [{ containerID: 0, hostID: 1000, size: 10 }],
          gidMappings: [{ containerID: 0, hostID: 2000, size: 10 }],
        });
      },
      ['/bin/checker', 'stat', `/vol/${file}`],
    );
    const seen = statInside(bundle.dir, bundle.root, file);
    const expected = file === 'by-root' ? { uid: 1000, gid: 2000 } : { uid: 1005, gid: 2005 };
    t.match(seen, expected, `${file} appears as ${expected.uid}:${expected.gid}`);
  }
  t.equal(fs.statSync(path.join(vol, 'by-root')).uid, 0, 'the source keeps its owner');
});

t.test("idmap without mount mappings uses the container's user namespace mappings", async (t) => {
  const vol = volume(t);
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces!.push({ type: 'user' });
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.mounts!.push({ destination: '/vol', type: 'bind', source: vol, options: ['rbind', 'ridmap'] });
    },
    ['/bin/checker', 'stat', '/vol/by-5'],
  );
  // The container's root is host uid 100000: it must be able to reach the rootfs.
  fs.chmodSync(bundle.dir, 0o755);
  fs.mkdirSync(path.join(bundle.rootfs, 'vol')); // root-owned rootfs: the mount point must exist
  t.match(
    statInside(bundle.dir, bundle.root, 'by-5'),
    { uid: 5, gid: 5 },
    'ownership reads the same inside the user namespace',
  );
});

function tempDirOf(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync('/tmp/tsrun-vol-');
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
