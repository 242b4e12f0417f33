import t from 'tap';
import { parseConfig } from '../../src/lib/config';
import { defaultSpec } from '../../src/lib/spec-default';

t.test('default spec matches runc spec', async (t) => {
  const spec = defaultSpec({ rootless: false, cgroupNamespace: true });
  t.equal(spec.ociVersion, '1.3.0');
  t.same(spec.root, { path: 'rootfs', readonly: true });
  t.equal(spec.hostname, 'tsrun');
  const process = spec.process!;
  t.equal(process.terminal, true);
  t.same(process.args, ['sh']);
  t.same(process.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm']);
  t.equal(process.cwd, '/');
  t.same(process.user, { uid: 0, gid: 0 });
  t.equal(process.noNewPrivileges, true);
  t.same(process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }]);

  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  t.same(process.capabilities!.bounding, caps);
  t.same(process.capabilities!.effective, caps);
  t.same(process.capabilities!.permitted, caps);

  t.same(
    spec.mounts!.map((m) => m.destination),
    ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup'],
  );
  t.same(spec.mounts![2].options, ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']);
  t.same(spec.mounts![5], {
    destination: '/sys',
    type: 'sysfs',
    source: 'sysfs',
    options: ['nosuid', 'noexec', 'nodev', 'ro'],
  });

  t.same(
    spec.linux!.namespaces!.map((n) => n.type),
    ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'],
  );
  t.ok(spec.linux!.maskedPaths!.includes('/proc/kcore'));
  t.ok(spec.linux!.readonlyPaths!.includes('/proc/sys'));
  t.same(spec.linux!.resources, { devices: [{ allow: false, access: 'rwm' }] });
  t.equal(spec.linux!.uidMappings, undefined);
});

t.test('inheritable and ambient capabilities are never filled (CVE-2022-29162)', async (t) => {
  for (const rootless of [false, true]) {
    const caps = defaultSpec({ rootless, cgroupNamespace: true }).process!.capabilities!;
    t.ok(caps.inheritable === undefined || caps.inheritable.length === 0, `inheritable, rootless=${rootless}`);
    t.ok(caps.ambient === undefined || caps.ambient.length === 0, `ambient, rootless=${rootless}`);
  }
});

t.test('custom args', async (t) => {
  t.same(defaultSpec({ rootless: false, args: ['/bin/echo', 'hi'], cgroupNamespace: true }).process!.args, [
    '/bin/echo',
    'hi',
  ]);
  t.same(defaultSpec({ rootless: false, args: [], cgroupNamespace: true }).process!.args, ['sh']);
});

t.test('rootless variant', async (t) => {
  const spec = defaultSpec({ rootless: true, cgroupNamespace: true });
  const linux = spec.linux!;
  const types = linux.namespaces!.map((n) => n.type);
  t.ok(types.includes('user'));
  t.notOk(types.includes('network'));
  t.same(linux.uidMappings, [{ containerID: 0, hostID: process.geteuid!(), size: 1 }]);
  t.same(linux.gidMappings, [{ containerID: 0, hostID: process.getegid!(), size: 1 }]);
  t.equal(linux.resources, undefined);

  const sys = spec.mounts!.find((m) => m.destination === '/sys')!;
  t.same(sys, {
    destination: '/sys',
    type: 'none',
    source: '/sys',
    options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
  });
  const pts = spec.mounts!.find((m) => m.destination === '/dev/pts')!;
  t.notOk(pts.options!.includes('gid=5'));
  t.ok(pts.options!.includes('ptmxmode=0666'));
  // As runc's spec --rootless: the cgroup mount stays (each hierarchy bound from the init's cgroup there).
  t.ok(spec.mounts!.some((m) => m.destination === '/sys/fs/cgroup' && m.type === 'cgroup'));
});

t.test('default specs pass parseConfig unchanged', async (t) => {
  for (const rootless of [false, true]) {
    const spec = defaultSpec({ rootless, cgroupNamespace: true });
    const text = JSON.stringify(spec, null, 2);
    t.same(parseConfig(text), spec, `rootless=${rootless}`);
  }
});

t.test('each call returns an independent object', async (t) => {
  const first = defaultSpec({ rootless: false, cgroupNamespace: true });
  first.mounts![0].destination = '/changed';
  first.linux!.maskedPaths!.push('/x');
  const second = defaultSpec({ rootless: false, cgroupNamespace: true });
  t.equal(second.mounts![0].destination, '/proc');
  t.notOk(second.linux!.maskedPaths!.includes('/x'));
});

t.test('a cgroup namespace only on a cgroup2-only host, as runc spec does', async (t) => {
  const types = (cgroupNamespace: boolean): string[] =>
    defaultSpec({ rootless: false, cgroupNamespace }).linux!.namespaces!.map((n) => n.type);
  t.same(types(true), ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup']);
  t.same(types(false), ['pid', 'network', 'ipc', 'uts', 'mount'], 'v1 or hybrid: the host cgroup namespace');
});
