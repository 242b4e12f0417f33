/**
 * The one mountinfo reader and the one namespace table (no root).
 */
import t from 'tap';
import { cgroupV1Selectors, parseMountinfo } from '../../src/lib/mountinfo';
import { CLONE_FLAGS, JOIN_ORDER, NAMESPACES, ownNamespace, sameNamespace } from '../../src/lib/namespaces';
import { readCgroupHierarchies } from '../../src/lib/host';
import { readHierarchies } from '../../src/lib/cgroup/manager';

const SAMPLE = [
  '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
  '30 22 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct',
  '31 22 0:27 / /sys/fs/cgroup/systemd rw shared:10 - cgroup cgroup rw,xattr,name=systemd,release_agent=/x',
  '32 22 0:28 / /sys/fs/cgroup/unified rw shared:11 - cgroup2 cgroup2 rw,nsdelegate',
  '40 22 0:30 /sub\\040dir /mnt/with\\040space\\011tab rw - tmpfs tmpfs rw',
  '41 22 0:31 / /proc rw master:2 unbindable - proc proc rw',
  'not a mountinfo line',
  '',
].join('\n');

t.test('parseMountinfo: every field the readers use, escapes undone, optional fields skipped', async (t) => {
  const entries = parseMountinfo(SAMPLE);
  t.equal(entries.length, 6, 'lines without the " - " separator are not mounts');
  t.same(entries[4], {
    id: 40,
    root: '/sub dir',
    mountPoint: '/mnt/with space\ttab',
    fstype: 'tmpfs',
    source: 'tmpfs',
    superOptions: 'rw',
  });
  t.same(
    entries.map((e) => e.fstype),
    ['ext4', 'cgroup', 'cgroup', 'cgroup2', 'tmpfs', 'proc'],
  );
});

t.test('one list of generic cgroup v1 options, for the host view and the cgroup layer alike', async (t) => {
  t.same(cgroupV1Selectors('rw,nosuid,nodev,noexec,relatime,cpu,cpuacct'), ['cpu', 'cpuacct']);
  t.same(cgroupV1Selectors('rw,xattr,name=systemd,release_agent=/x'), ['name=systemd']);
  t.same(
    readCgroupHierarchies(SAMPLE).map((h) => [h.name, h.version, h.options]),
    [
      ['cpu,cpuacct', 1, 'cpu,cpuacct'],
      ['systemd', 1, 'name=systemd'],
      ['unified', 2, ''],
    ],
  );
  t.same(
    readHierarchies(SAMPLE)
      .filter((h) => h.version === 1)
      .map((h) => [h.mountPoint, h.controllers]),
    [
      ['/sys/fs/cgroup/cpu,cpuacct', ['cpu', 'cpuacct']],
      ['/sys/fs/cgroup/systemd', ['name=systemd']],
    ],
  );
});

t.test('the namespace table: files, clone flags, join order', async (t) => {
  t.equal(CLONE_FLAGS.mount, 0x00020000);
  t.equal(CLONE_FLAGS.network, 0x40000000);
  t.equal(CLONE_FLAGS.time, 0x00000080);
  t.equal(JOIN_ORDER[0], 'user', 'the user namespace is joined first');
  t.same([...JOIN_ORDER].sort(), Object.keys(NAMESPACES).sort(), 'every type is joined');
  t.equal(new Set(Object.values(CLONE_FLAGS)).size, 8, 'one flag each');
});

t.test('sameNamespace: one rule (device and inode), null where a file cannot be read', async (t) => {
  t.equal(sameNamespace(ownNamespace('network'), '/proc/self/ns/net'), true);
  t.equal(sameNamespace(`/proc/${process.pid}/ns/uts`, ownNamespace('uts')), true);
  t.equal(sameNamespace(ownNamespace('network'), ownNamespace('uts')), false, 'two types are two namespaces');
  t.equal(sameNamespace('/nonexistent/ns', ownNamespace('uts')), null);
});
