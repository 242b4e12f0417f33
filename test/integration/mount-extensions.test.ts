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
  const bundle = makeBundle(t, (c) => {
    c.mounts!.push({ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'nosuid'] });
  }, ['/bin/sh', '-c', 'head -1 /etc/passwd; ls -l /etc/hostname | cut -c1-10; echo changed > /etc/hostname; grep -c " /etc tmpfs" /proc/mounts']);
  const id = uniqueId();
  const result = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  const rootfs = bundle.rootfs;
  t.equal(result.status, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  t.equal(lines[0], 'root:x:0:0:root:/root:/bin/sh', 'files of the covered directory are there');
  t.equal(lines[1], '-rw-r--r--', 'modes are kept');
  t.equal(lines[2], '1', '/etc is a tmpfs');
  t.not(fs.readFileSync(path.join(rootfs, 'etc', 'hostname'), 'utf8'), 'changed\n', 'the rootfs underneath is untouched');
  t.same(leftovers(bundle, id), []);
});
