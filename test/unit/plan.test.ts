/**
 * The plan compiler without root: config in, launch plan out.  The host is
 * described by a fake HostView, so these tests touch nothing.
 */
import t from 'tap';
import { type Config, ConfigError } from '../../src/lib/config';
import { readCgroupHierarchies } from '../../src/lib/host';
import { MOUNT_ATTR, MS } from '../../src/lib/mount-options';
import {
  type CgroupHierarchy,
  compileCreatePlan,
  compileExecPlan,
  type HostView,
  type PlanContext,
  processRlimits,
} from '../../src/lib/plan';
import { decodePlan, encodePlan, MountKind, Op, opsOf, type PlanOp } from '../../src/lib/plan-format';
import { CLONE_FLAGS } from '../../src/lib/namespaces';
import { baseConfig } from '../fixtures';

function fakeHost(paths: Record<string, 'dir' | 'file'>, cgroups: CgroupHierarchy[] = []): HostView {
  return {
    kindOf: (p) => paths[p] ?? null,
    cgroupHierarchies: () => cgroups,
    isHostNamespace: (p) => p === '/proc/1/ns/net',
  };
}

const BUNDLE = '/bundles/b1';
function ctx(extra: Record<string, 'dir' | 'file'> = {}, cgroups?: CgroupHierarchy[]): PlanContext {
  return {
    bundle: BUNDLE,
    noPivot: false,
    consoleSocket: false,
    host: fakeHost({ [`${BUNDLE}/rootfs`]: 'dir', ...extra }, cgroups),
  };
}

function compile(mutate: (c: Config) => void = () => {}, context = ctx()): PlanOp[] {
  const config = baseConfig();
  mutate(config);
  const { ops } = compileCreatePlan(config, context);
  // Every plan must survive the wire format unchanged.
  t.same(decodePlan(encodePlan(ops)), ops, 'plan round-trips through the wire format');
  return ops;
}

const codes = (ops: PlanOp[]): string[] => ops.map((o) => Op[o.op]);
const find = opsOf;

t.test('the default config compiles to the expected sequence', async (t) => {
  const ops = compile();
  t.same(codes(ops).slice(0, 7), [
    'UNSHARE',
    'CLONE_INIT',
    'SETSID',
    'LOOPBACK_UP',
    'SETHOSTNAME',
    'ROOTFS_PREPARE',
    'MOUNT',
  ]);
  const tail = codes(ops).slice(codes(ops).indexOf('PIVOT_ROOT'));
  t.same(tail, [
    'PIVOT_ROOT',
    'REOPEN_DEV_NULL',
    'CHDIR',
    'HOME',
    'USER',
    'CHDIR',
    'EXEC_PREPARE',
    'WAIT_START',
    'EXEC',
  ]);
  const unshare = find(ops, Op.UNSHARE)[0];
  const expected = CLONE_FLAGS.pid | CLONE_FLAGS.network | CLONE_FLAGS.ipc | CLONE_FLAGS.uts | CLONE_FLAGS.mount;
  t.equal(unshare.fields.flags, BigInt(expected), 'unshares exactly the configured namespaces');
  t.same(find(ops, Op.ROOTFS_PREPARE)[0].fields, { rootfs: `${BUNDLE}/rootfs`, propagation: MS.SLAVE | MS.REC });
});

t.test(
  "stdio that is the host's /dev/null is reopened from the container's /dev where tsrun made it (runc)",
  async (t) => {
    const has = (ops: PlanOp[]): boolean => ops.some((o) => o.op === Op.REOPEN_DEV_NULL);
    t.ok(has(compile()), 'the default: after pivot_root');
    t.notOk(
      has(
        compile(
          (c) => c.mounts!.push({ destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] }),
          ctx({ '/dev': 'dir' }),
        ),
      ),
      "not where /dev is the host's own",
    );
    t.notOk(
      has(
        compile(
          (c) => (c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'mount')),
          ctx({ [`${BUNDLE}/rootfs`]: 'dir' }),
        ),
      ),
      'not without a mount namespace (the rootfs is a host bind; runc has none such)',
    );
  },
);

t.test('mounts: fs options become fsconfig data and mount attributes', async (t) => {
  const ops = compile();
  const dev = find(ops, Op.MOUNT).find((m) => m.fields.dest === 'dev')!;
  t.equal(dev.fields.fstype, 'tmpfs');
  t.equal(dev.fields.data, 'mode=755,size=65536k');
  t.equal(dev.fields.attrSet, MOUNT_ATTR.NOSUID | MOUNT_ATTR.STRICTATIME);
  const sys = find(ops, Op.MOUNT).find((m) => m.fields.dest === 'sys')!;
  t.equal(sys.fields.attrSet, MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NODEV);
});

t.test('mounts: bind sources resolve against the bundle and pick file or dir', async (t) => {
  const ops = compile(
    (c) => {
      c.mounts!.push({ destination: '/data', type: 'bind', source: 'data', options: ['rbind', 'ro', 'rshared'] });
      c.mounts!.push({ destination: 'etc/resolv.conf', source: '/etc/resolv.conf', options: ['bind', 'rro'] });
    },
    ctx({ [`${BUNDLE}/data`]: 'dir', '/etc/resolv.conf': 'file' }),
  );
  const [data, resolv] = find(ops, Op.MOUNT).slice(-2);
  t.match(data.fields, {
    kind: 1,
    recursiveBind: 1,
    create: 0,
    source: `${BUNDLE}/data`,
    dest: 'data',
    attrSet: MOUNT_ATTR.RDONLY,
    propagation: MS.SHARED,
    propagationRecursive: 1,
  });
  t.match(resolv.fields, {
    kind: 1,
    recursiveBind: 0,
    create: 1,
    dest: 'etc/resolv.conf',
    recAttrSet: MOUNT_ATTR.RDONLY,
  });
});

t.test('mounts: tmpcopyup marks the tmpfs for copying', async (t) => {
  const ops = compile((c) =>
    c.mounts!.push({ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'mode=755'] }),
  );
  t.match(find(ops, Op.MOUNT).at(-1)!.fields, { dest: 'etc', fstype: 'tmpfs', data: 'mode=755', copyUp: 1 });
  t.equal(find(ops, Op.MOUNT)[0].fields.copyUp, 0);
});

t.test('mounts: idmap is prepared on the host side, before any namespace, and attached by slot', async (t) => {
  const ops = compile(
    (c) => {
      c.mounts!.push({
        destination: '/vol',
        type: 'bind',
        source: '/srv/vol',
        options: ['rbind', 'ridmap', 'ro'],
        uidMappings: [{ containerID: 0, hostID: 1000, size: 10 }],
        gidMappings: [{ containerID: 0, hostID: 2000, size: 10 }],
      });
    },
    ctx({ '/srv/vol': 'dir' }),
  );
  t.equal(codes(ops)[0], 'IDMAP_PREPARE', 'prepared before namespaces change');
  t.match(ops[0].fields, {
    slot: 0,
    source: '/srv/vol',
    recursiveBind: 1,
    uidMap: '0 1000 10\n',
    gidMap: '0 2000 10\n',
    attrSet: MOUNT_ATTR.RDONLY,
    idmapRecursive: 1,
  });
  t.match(find(ops, Op.MOUNT).at(-1)!.fields, { kind: 2, slot: 0, dest: 'vol', attrSet: 0 });

  const containerMaps = compile(
    (c) => {
      c.linux!.namespaces!.push({ type: 'user' });
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.mounts!.push({ destination: '/vol', type: 'bind', source: '/srv/vol', options: ['bind', 'idmap'] });
    },
    ctx({ '/srv/vol': 'dir' }),
  );
  t.equal(
    find(containerMaps, Op.IDMAP_PREPARE)[0].fields.uidMap,
    '0 100000 65536\n',
    "the container's mappings serve when the mount has none",
  );
  t.throws(
    () =>
      compile(
        (c) => c.mounts!.push({ destination: '/vol', type: 'bind', source: '/srv/vol', options: ['bind', 'idmap'] }),
        ctx({ '/srv/vol': 'dir' }),
      ),
    /^mounts\[6\]\.options: idmap needs/,
  );
  t.throws(
    () =>
      compile((c) =>
        c.mounts!.push({
          destination: '/t',
          type: 'tmpfs',
          options: ['idmap'],
          uidMappings: [{ containerID: 0, hostID: 1, size: 1 }],
          gidMappings: [{ containerID: 0, hostID: 1, size: 1 }],
        }),
      ),
    /^mounts\[6\]\.options: idmap and ridmap apply to bind mounts only/,
  );
});

t.test('mounts: destinations are normalised under the rootfs', async (t) => {
  const ops = compile((c) => {
    c.mounts!.push({ destination: '/a/../../b//c/', type: 'tmpfs', source: 'tmpfs' });
  });
  t.equal(find(ops, Op.MOUNT).at(-1)!.fields.dest, 'b/c');
});

t.test('mounts: errors name the field', async (t) => {
  const bad = (mutate: (c: Config) => void, field: RegExp) => t.throws(() => compile(mutate), field);
  bad(
    (c) => c.mounts!.push({ destination: '/x', type: 'bind', source: '/nonexistent' }),
    /^mounts\[6\]\.source: \/nonexistent: no such file or directory$/,
  );
  bad((c) => c.mounts!.push({ destination: '/', type: 'tmpfs', source: 'tmpfs' }), /^mounts\[6\]\.destination/);
  bad((c) => c.mounts!.push({ destination: '/x', source: 'x' }), /^mounts\[6\]\.type/);
  bad(
    (c) => c.mounts!.push({ destination: '/x', type: 'proc', options: ['tmpcopyup'] }),
    /^mounts\[6\]\.options: tmpcopyup applies to tmpfs/,
  );
});

t.test('cgroup mounts follow the host layout', async (t) => {
  const hybrid: CgroupHierarchy[] = [
    { name: 'cpu,cpuacct', version: 1, options: 'cpu,cpuacct' },
    { name: 'memory', version: 1, options: 'memory' },
    { name: 'unified', version: 2, options: '' },
  ];
  const withCgroup = (c: Config) =>
    c.mounts!.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid'] });
  const ops = compile(withCgroup, ctx({}, hybrid));
  const cg = find(ops, Op.MOUNT).filter((m) => String(m.fields.dest).startsWith('sys/fs/cgroup'));
  t.same(
    cg.map((m) => [m.fields.dest, m.fields.fstype, m.fields.data]),
    [
      ['sys/fs/cgroup', 'tmpfs', 'mode=755'],
      ['sys/fs/cgroup/cpu,cpuacct', 'cgroup', 'cpu,cpuacct'],
      ['sys/fs/cgroup/memory', 'cgroup', 'memory'],
    ],
    "the v1 hierarchies, not the hybrid host's cgroup2 tree (runc leaves it out)",
  );
  t.equal((cg[0].fields.attrSet as number) & MOUNT_ATTR.RDONLY, 0, 'the tmpfs stays writable for its mount points');
  t.equal((cg[1].fields.attrSet as number) & MOUNT_ATTR.RDONLY, MOUNT_ATTR.RDONLY, 'each hierarchy is read-only');
  t.same(
    find(ops, Op.SYMLINK)
      .filter((s) => String(s.fields.path).startsWith('sys/'))
      .map((s) => s.fields.path),
    ['sys/fs/cgroup/cpu', 'sys/fs/cgroup/cpuacct'],
  );

  // Without a cgroup namespace each hierarchy is bound from the container's own cgroup, not mounted whole.
  const dirs = {
    '/sys/fs/cgroup/cpu,cpuacct': '/sys/fs/cgroup/cpu,cpuacct/c1',
    '/sys/fs/cgroup/memory': '/sys/fs/cgroup/memory/c1',
    '/sys/fs/cgroup/unified': '/sys/fs/cgroup/unified/c1',
  };
  const bound = find(compile(withCgroup, { ...ctx({}, hybrid), cgroupDirs: dirs }), Op.MOUNT).filter((m) =>
    String(m.fields.dest).startsWith('sys/fs/cgroup/'),
  );
  t.same(
    bound.map((m) => [m.fields.kind, m.fields.source, m.fields.dest]),
    [
      [MountKind.BIND, '/sys/fs/cgroup/cpu,cpuacct/c1', 'sys/fs/cgroup/cpu,cpuacct'],
      [MountKind.BIND, '/sys/fs/cgroup/memory/c1', 'sys/fs/cgroup/memory'],
    ],
  );
  t.ok(
    bound.every((m) => (m.fields.attrSet as number) & MOUNT_ATTR.RDONLY),
    'read-only binds',
  );
  const withNs = compile(
    (c) => {
      withCgroup(c);
      c.linux!.namespaces!.push({ type: 'cgroup' });
    },
    { ...ctx({}, hybrid), cgroupDirs: dirs },
  );
  t.same(
    find(withNs, Op.MOUNT)
      .filter((m) => String(m.fields.dest).startsWith('sys/fs/cgroup/'))
      .map((m) => m.fields.fstype),
    ['cgroup', 'cgroup'],
    'in its own cgroup namespace a fresh mount already shows only its own',
  );

  const unified = compile(withCgroup, ctx({}, [{ name: '', version: 2, options: '' }]));
  t.same(
    find(unified, Op.MOUNT)
      .filter((m) => m.fields.dest === 'sys/fs/cgroup')
      .map((m) => m.fields.fstype),
    ['cgroup2'],
  );
  // A user's container without a cgroup namespace: its init's cgroup bound, as runc falls back to.
  const v2 = [{ name: '', version: 2 as const, options: '' }];
  const users = compile(withCgroup, {
    ...ctx({}, v2),
    unprivileged: true,
    cgroupDirs: { '/sys/fs/cgroup': '/sys/fs/cgroup/user.slice/u' },
  });
  t.same(
    find(users, Op.MOUNT)
      .filter((m) => m.fields.dest === 'sys/fs/cgroup')
      .map((m) => [m.fields.kind, m.fields.source]),
    [[MountKind.BIND, '/sys/fs/cgroup/user.slice/u']],
  );
  const usersNs = compile(
    (c) => {
      withCgroup(c);
      c.linux!.namespaces!.push({ type: 'cgroup' });
    },
    { ...ctx({}, v2), unprivileged: true, cgroupDirs: { '/sys/fs/cgroup': '/sys/fs/cgroup/user.slice/u' } },
  );
  t.same(
    find(usersNs, Op.MOUNT)
      .filter((m) => m.fields.dest === 'sys/fs/cgroup')
      .map((m) => m.fields.fstype),
    ['cgroup2'],
    'in a cgroup namespace of its own, a fresh cgroup2 mount',
  );
});

t.test('cgroup hierarchies are read from mountinfo', async (t) => {
  const info = [
    '35 25 0:30 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755',
    '36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
    '37 35 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
    '38 35 0:33 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
    '39 25 0:34 / /mnt/other rw - cgroup cgroup rw,pids',
  ].join('\n');
  t.same(readCgroupHierarchies(info), [
    { name: 'unified', version: 2, options: '' },
    { name: 'cpu,cpuacct', version: 1, options: 'cpu,cpuacct' },
    { name: 'systemd', version: 1, options: 'name=systemd' },
  ]);
});

t.test('namespaces: joined by path in a safe order, user namespace handshake', async (t) => {
  const ops = compile((c) => {
    c.linux!.namespaces = [
      { type: 'network', path: '/run/netns/n1' },
      { type: 'mount' },
      { type: 'pid' },
      { type: 'user' },
      { type: 'uts', path: '/proc/9/ns/uts' },
    ];
    c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    delete c.hostname;
  });
  t.same(codes(ops).slice(0, 6), ['SETNS', 'SETNS', 'UNSHARE_USER', 'BECOME_ROOT', 'UNSHARE', 'CLONE_INIT']);
  t.same(
    find(ops, Op.SETNS).map((o) => o.fields.path),
    ['/run/netns/n1', '/proc/9/ns/uts'],
  );
  t.equal(find(ops, Op.UNSHARE)[0].fields.flags, BigInt(CLONE_FLAGS.mount | CLONE_FLAGS.pid));
  t.ok(
    find(ops, Op.MKNOD).every((m) => m.fields.bindFromHost === 1),
    'devices are bound from the host in a user namespace',
  );
});

t.test("tsrun in a user namespace of its own (rootless podman's): devices are bound, as runc does", async (t) => {
  const plain = compile(() => {});
  t.ok(
    find(plain, Op.MKNOD).every((m) => m.fields.bindFromHost === 0),
    'made, on the host',
  );
  const inUserns = compile(() => {}, { ...ctx(), host: { ...ctx().host, inUserNamespace: () => true } });
  t.ok(find(inUserns, Op.MKNOD).length > 0);
  t.ok(
    find(inUserns, Op.MKNOD).every((m) => m.fields.bindFromHost === 1),
    'bound, where no device can be made',
  );
});

t.test('a session keyring unless --no-new-keyring', async (t) => {
  const withKeyring = compile(() => {}, { ...ctx(), sessionKeyring: 'c1' });
  t.same(
    find(withKeyring, Op.SESSION_KEYRING).map((o) => o.fields.name),
    ['c1'],
  );
  t.equal(find(compile(), Op.SESSION_KEYRING).length, 0);
});

t.test('cgroup v2: the init is cloned into its cgroup and then unshares its cgroup namespace', async (t) => {
  const ops = compile((c) => c.linux!.namespaces!.push({ type: 'cgroup' }), {
    ...ctx(),
    cgroupTargets: { joins: [], cloneInto: '/sys/fs/cgroup/c1' },
  });
  const at = codes(ops).indexOf('CLONE_INIT');
  t.same(ops[at].fields, { cgroupDir: '/sys/fs/cgroup/c1' });
  t.equal(
    (find(ops, Op.UNSHARE)[0].fields.flags as bigint) & BigInt(CLONE_FLAGS.cgroup),
    0n,
    'not unshared by the helper',
  );
  t.same(
    ops[at + 1],
    { op: Op.UNSHARE, fields: { flags: BigInt(CLONE_FLAGS.cgroup) } },
    'unshared by the init, inside its cgroup',
  );
  const v1 = compile((c) => c.linux!.namespaces!.push({ type: 'cgroup' }));
  t.same(find(v1, Op.CLONE_INIT)[0].fields, { cgroupDir: '' }, 'v1: the helper was placed beforehand');
});

t.test('capabilities: bounding before the user switch, the rest after; unknown names refused', async (t) => {
  const ops = compile((c) => {
    c.process!.user = { uid: 1000, gid: 1000 };
    c.process!.capabilities = {
      bounding: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      effective: ['CAP_KILL'],
      permitted: ['CAP_KILL', 'CAP_CHOWN'],
      inheritable: [],
      ambient: [],
    };
  });
  const order = codes(ops);
  t.ok(order.indexOf('CAPS_BOUNDING') < order.indexOf('USER') && order.indexOf('USER') < order.indexOf('CAPS_SET'));
  t.same(find(ops, Op.CAPS_BOUNDING)[0].fields, { keep: (1n << 0n) | (1n << 5n) | (1n << 10n) });
  t.same(find(ops, Op.CAPS_SET)[0].fields, {
    effective: 1n << 5n,
    permitted: (1n << 5n) | 1n,
    inheritable: 0n,
    ambient: 0n,
  });
  const unknown = compile((c) => {
    c.process!.capabilities = { bounding: ['CAP_NOPE', 'CAP_KILL'] };
  });
  t.same(
    find(unknown, Op.CAPS_BOUNDING)[0].fields,
    { keep: 1n << 5n },
    'an unknown name is left out with a warning (runtime-spec 1.3: SHOULD NOT fail), as runc',
  );
  t.notOk(codes(compile()).includes('CAPS_SET'), 'no capabilities section: nothing changes, like runc');
});

t.test('time namespace offsets', async (t) => {
  const ops = compile((c) => {
    c.linux!.namespaces!.push({ type: 'time' });
    c.linux!.timeOffsets = { boottime: { secs: 3600, nanosecs: 5 }, monotonic: { secs: -10 } };
  });
  t.equal(find(ops, Op.TIMENS_OFFSETS)[0].fields.content, 'monotonic -10 0\nboottime 3600 5\n');
  t.ok(
    codes(ops).indexOf('TIMENS_OFFSETS') < codes(ops).indexOf('CLONE_INIT'),
    'offsets are written before the init is born',
  );
});

t.test('devices: defaults, config overrides, symlinks', async (t) => {
  const ops = compile((c) => {
    c.linux!.devices = [
      { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o600, uid: 5, gid: 6 },
      { path: '/dev/fuse', type: 'c', major: 10, minor: 229 },
    ];
  });
  const nodes = find(ops, Op.MKNOD);
  t.same(
    nodes.map((n) => n.fields.path),
    ['dev/null', 'dev/zero', 'dev/full', 'dev/random', 'dev/urandom', 'dev/tty', 'dev/fuse'],
  );
  t.match(nodes[0].fields, { mode: 0o600, uid: 5, gid: 6, type: 0o020000, major: 1, minor: 3, bindFromHost: 0 });
  t.same(
    find(ops, Op.SYMLINK).map((s) => [s.fields.path, s.fields.target]),
    [
      ['dev/fd', '/proc/self/fd'],
      ['dev/stdin', '/proc/self/fd/0'],
      ['dev/stdout', '/proc/self/fd/1'],
      ['dev/stderr', '/proc/self/fd/2'],
      ['dev/ptmx', 'pts/ptmx'],
    ],
  );
  const hostDev = compile(
    (c) => c.mounts!.splice(1, 1, { destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] }),
    ctx({ '/dev': 'dir' }),
  );
  t.equal(find(hostDev, Op.MKNOD).length, 0, 'a bind-mounted /dev is used as it is');
  // podman --privileged lists every host device, /dev/ptmx too: runc links it to the container's devpts all the same.
  const privileged = compile((c) => {
    c.linux!.devices = [{ path: '/dev/ptmx', type: 'c', major: 5, minor: 2 }];
  });
  t.notOk(
    find(privileged, Op.MKNOD).some((n) => n.fields.path === 'dev/ptmx'),
    'no /dev/ptmx node',
  );
  t.ok(
    find(privileged, Op.SYMLINK).some((s) => s.fields.path === 'dev/ptmx' && s.fields.target === 'pts/ptmx'),
    'the link to pts/ptmx',
  );
  // runc's setupDevSymlinks: /dev/core -> /proc/kcore where the host's kernel has one.
  const kcore = compile(() => {}, ctx({ '/proc/kcore': 'file' }));
  t.same(
    find(kcore, Op.SYMLINK)
      .map((s) => [s.fields.path, s.fields.target])
      .filter(([p]) => p === 'dev/core'),
    [['dev/core', '/proc/kcore']],
    '/dev/core where the host has /proc/kcore',
  );
});

t.test('hooks: container hooks compile into the plan, runtime hooks into a sync point', async (t) => {
  const ops = compile((c) => {
    c.hooks = {
      createRuntime: [{ path: '/bin/true' }],
      createContainer: [{ path: '/hooks/cc', args: ['cc', '-x'], env: ['A=1'], timeout: 5 }],
      startContainer: [{ path: '/bin/sc' }],
    };
  });
  const order = codes(ops);
  t.ok(order.indexOf('PARENT_HOOKS') < order.indexOf('HOOK'));
  t.ok(order.indexOf('HOOK') < order.indexOf('PIVOT_ROOT'), 'createContainer runs before pivot_root');
  t.ok(order.lastIndexOf('HOOK') > order.indexOf('WAIT_START'), 'startContainer runs after start');
  t.same(find(ops, Op.HOOK)[0].fields, {
    stage: 3,
    path: '/hooks/cc',
    args: ['cc', '-x'],
    env: ['A=1'],
    timeout: 5,
    cwd: `${BUNDLE}/rootfs`,
    processEnv: 0,
  });
  t.same(find(ops, Op.HOOK)[1].fields.args, ['/bin/sc'], 'args default to the path');
  t.same(
    { ...find(ops, Op.HOOK)[1].fields, args: undefined, path: undefined },
    {
      stage: 4,
      args: undefined,
      path: undefined,
      env: [],
      timeout: 0,
      cwd: '/',
      processEnv: 1,
    },
    "startContainer with no env: the process's, in its cwd (runc's)",
  );
  const noEnv = find(
    compile((c) => {
      c.hooks = { createContainer: [{ path: '/hooks/cc' }] };
    }),
    Op.HOOK,
  )[0].fields;
  t.same(
    { env: noEnv.env, processEnv: noEnv.processEnv },
    { env: baseConfig().process!.env, processEnv: 0 },
    "createContainer with no env: the process's as configured",
  );
  const order2 = codes(
    compile((c) => {
      c.process!.cwd = '/work/here';
      c.hooks = { createContainer: [{ path: '/hooks/cc' }] };
    }),
  );
  t.ok(
    order2.indexOf('MKDIR') > order2.indexOf('HOOK') && order2.indexOf('MKDIR') < order2.indexOf('PIVOT_ROOT'),
    'the cwd is made after the createContainer hooks, before pivot_root',
  );
  t.notOk(
    compile().some((o) => o.op === Op.PARENT_HOOKS),
    'no hooks, no sync point',
  );
});

t.test('process attributes', async (t) => {
  const ops = compile((c) => {
    c.process!.user = { uid: 1000, gid: 1001, umask: 0o077, additionalGids: [5, 6] };
    c.process!.rlimits = [
      { type: 'RLIMIT_NOFILE', soft: 100, hard: 200 },
      { type: 'RLIMIT_CORE', soft: 2 ** 64, hard: 2 ** 64 },
    ];
    c.process!.oomScoreAdj = -5;
    c.process!.noNewPrivileges = true;
    c.process!.cwd = '/tmp';
    c.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
    c.root!.readonly = true;
    c.linux!.rootfsPropagation = 'rshared';
  });
  t.same(find(ops, Op.USER)[0].fields, { uid: 1000, gid: 1001, umask: 0o077, groups: [5, 6] });
  t.equal(find(ops, Op.PARENT_RLIMITS).length, 1, 'one sync point: the parent sets every rlimit');
  t.same(processRlimits(baseConfig().process!), [], 'no rlimits, nothing to set');
  const config = baseConfig();
  config.process!.rlimits = [
    { type: 'RLIMIT_NOFILE', soft: 100, hard: 200 },
    { type: 'RLIMIT_CORE', soft: 2 ** 64, hard: 2 ** 64 },
  ];
  t.same(
    processRlimits(config.process!).map((r) => [r.resource, r.name, r.soft, r.hard]),
    [
      [7, 'RLIMIT_NOFILE', 100n, 200n],
      [4, 'RLIMIT_CORE', 0xffffffffffffffffn, 0xffffffffffffffffn],
    ],
  );
  t.equal(find(ops, Op.OOM_SCORE_ADJ)[0].fields.value, -5 >>> 0, "negative values travel as two's complement");
  t.equal(ops[0].op, Op.OOM_SCORE_ADJ, 'oom_score_adj is written first, from the host user namespace');
  t.same(
    find(ops, Op.CHDIR).map((o) => o.fields),
    [
      { cwd: '/tmp', stage: 0 },
      { cwd: '/tmp', stage: 1 },
    ],
    'the cwd before the user switch, and after it if refused',
  );
  t.same(find(ops, Op.MKDIR)[0].fields, { path: 'tmp' }, 'a missing cwd is made');
  t.same(find(ops, Op.HOME)[0].fields, { uid: 1000 }, "HOME: the user's, from /etc/passwd");
  const chdirs = codes(ops);
  t.ok(
    chdirs.indexOf('CHDIR') < chdirs.indexOf('USER') && chdirs.lastIndexOf('CHDIR') > chdirs.indexOf('USER'),
    'one try on each side of the user switch',
  );
  t.same(find(ops, Op.SYSCTL)[0].fields, { key: 'net/ipv4/ip_forward', value: '1' }, 'a path under /proc/sys');
  t.same(find(ops, Op.ROOT_PROPAGATION)[0].fields, { flags: MS.SHARED | MS.REC });
  const order = codes(ops);
  t.ok(order.indexOf('REMOUNT_ROOT_RO') > order.indexOf('PIVOT_ROOT'));
  t.ok(order.indexOf('NO_NEW_PRIVS') < order.indexOf('PARENT_RLIMITS'), 'runc: no_new_privs, then rlimits');
  t.ok(order.indexOf('PARENT_RLIMITS') < order.indexOf('USER'), 'rlimits before the user switch');
  t.same(
    find(ops, Op.EXEC_PREPARE)[0].fields.env,
    ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm', 'HOME=/'],
    'HOME=/ is added last when the config has none (OP_HOME may replace it)',
  );
  const withHome = compile((c) => {
    c.process!.env = ['HOME=/x'];
  });
  t.same(find(withHome, Op.HOME), [], 'the config names HOME: no lookup');
  t.same(find(withHome, Op.EXEC_PREPARE)[0].fields.env, ['HOME=/x']);
});

t.test('seccomp is loaded where runc loads it', async (t) => {
  const seccomp = { program: Buffer.alloc(16, 1), flags: 4, notify: false };
  const withSeccomp = (nnp: boolean): string[] => {
    const config = baseConfig();
    config.process!.noNewPrivileges = nnp;
    config.process!.capabilities = { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] };
    config.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW' };
    return codes(compileCreatePlan(config, { ...ctx(), seccomp }).ops);
  };
  const early = withSeccomp(false);
  t.ok(
    early.indexOf('SECCOMP') < early.indexOf('CAPS_BOUNDING'),
    'without no_new_privs: while CAP_SYS_ADMIN is still held',
  );
  const late = withSeccomp(true);
  t.ok(
    late.indexOf('SECCOMP') > late.indexOf('EXEC_PREPARE'),
    'with no_new_privs: after everything but the start wait',
  );
  t.ok(late.indexOf('SECCOMP') < late.indexOf('WAIT_START'), '...while the sync socket is still open for a listener');
  const config = baseConfig();
  config.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW' };
  t.throws(() => compileCreatePlan(config, ctx()), /^linux\.seccomp: not compiled/, 'a section never silently dropped');
  const execOps = compileExecPlan({ ...baseConfig().process!, noNewPrivileges: true }, { differing: {} }, { seccomp });
  const execOrder = codes(execOps);
  t.ok(
    execOrder.indexOf('SECCOMP') > execOrder.indexOf('EXEC_PREPARE') &&
      execOrder.indexOf('SECCOMP') < execOrder.indexOf('EXEC'),
    'exec too',
  );
  const decoded = decodePlan(encodePlan(execOps)).find((o) => o.op === Op.SECCOMP)!;
  t.same(
    decoded.fields,
    { flags: 4, notify: 0, atExec: 1, program: seccomp.program },
    'the program travels byte for byte',
  );
  // With no_new_privs and no listener the helper holds it for OP_EXEC, right before execve;
  // without no_new_privs, or with a listener to hand over, it is loaded where it stands.
  const atExec = (nnp: boolean, notify: boolean): number => {
    const config = baseConfig();
    config.process!.noNewPrivileges = nnp;
    config.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW' };
    return find(compileCreatePlan(config, { ...ctx(), seccomp: { ...seccomp, notify } }).ops, Op.SECCOMP)[0].fields
      .atExec as number;
  };
  t.equal(atExec(true, false), 1, 'no_new_privs, no listener: loaded at exec');
  t.equal(atExec(true, true), 0, 'no_new_privs with a listener: loaded before the start wait');
  t.equal(atExec(false, false), 0, 'without no_new_privs: loaded before the capabilities drop');
});

t.test('semantic errors name the field', async (t) => {
  const cases: Array<[(c: Config) => void, RegExp]> = [
    [
      (c) => {
        delete c.process;
      },
      /^process: required/,
    ],
    [
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'uts');
      },
      /^hostname:/,
    ],
    [
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'mount');
        c.linux!.maskedPaths = ['/proc/kcore'];
      },
      /^linux\.maskedPaths: needs a mount namespace of the container/,
    ],
    [
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'mount');
        c.linux!.rootfsPropagation = 'shared';
      },
      /^linux\.rootfsPropagation: needs a mount namespace/,
    ],
    [
      (c) => {
        c.linux!.namespaces!.push({ type: 'user' });
      },
      /^linux\.uidMappings/,
    ],
    [
      (c) => {
        c.process!.terminal = true;
      },
      /^process\.terminal: .*--console-socket/,
    ],
    [
      (c) => {
        c.process!.rlimits = [
          { type: 'RLIMIT_CORE', soft: 1, hard: 1 },
          { type: 'RLIMIT_CORE', soft: 1, hard: 1 },
        ];
      },
      /^process\.rlimits\[1\]\.type: duplicate/,
    ],
    [
      (c) => {
        c.root!.path = 'missing';
      },
      /^root\.path: \/bundles\/b1\/missing: no such directory/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'kernel.core_pattern': '|/evil' };
      },
      /^linux\.sysctl\["kernel\.core_pattern"\]: not in a namespace of the container/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'kernel.hostname': 'x' };
      },
      /^linux\.sysctl\["kernel\.hostname"\]: not allowed; use the hostname field/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'network');
      },
      /^linux\.sysctl\["net\.ipv4\.ip_forward"\]: not allowed in the host's network namespace/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'net.core.somaxconn': '1' };
        c.linux!.namespaces = [
          ...c.linux!.namespaces!.filter((n) => n.type !== 'network'),
          { type: 'network', path: '/proc/1/ns/net' },
        ];
      },
      /^linux\.sysctl\["net\.core\.somaxconn"\]: not allowed in the host's network namespace/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'kernel.shmmax': '1' };
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'ipc');
      },
      /^linux\.sysctl\["kernel\.shmmax"\]: not allowed in the host's IPC namespace/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'net/../kernel/core_pattern': 'x' };
      },
      /^linux\.sysctl\["net\/\.\.\/kernel\/core_pattern"\]: not a sysctl name/,
    ],
    [
      (c) => {
        c.linux!.sysctl = { 'kernel.domainname': 'x' };
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'uts');
        delete c.hostname;
      },
      /^linux\.sysctl\["kernel\.domainname"\]: not in a namespace/,
    ],
  ];
  for (const [mutate, message] of cases) {
    const config = baseConfig();
    mutate(config);
    t.throws(() => compileCreatePlan(config, ctx()), message);
    try {
      compileCreatePlan(config, ctx());
    } catch (err) {
      t.type(err, ConfigError);
    }
  }
});

t.test('the encoder refuses values the helper could misread', async (t) => {
  t.throws(() => encodePlan([{ op: Op.SETHOSTNAME, fields: { name: 'a\0b' } }]), /NUL/);
  // The types refuse these too; the encoder also guards what arrives untyped.
  t.throws(() => encodePlan([{ op: Op.CHDIR, fields: {} } as PlanOp]), /CHDIR\.cwd: expected a string/);
  t.throws(() => encodePlan([{ op: Op.CHDIR, fields: { cwd: '/', stage: 1.5 } }]), /CHDIR\.stage/);
});

t.test(
  '--no-pivot: the host full procfs and sysfs mounts outside the rootfs go before the move (runc msMoveRoot)',
  async (t) => {
    const pseudo = [
      '/proc/sys/fs/binfmt_misc-not-proc',
      '/sys',
      '/proc',
      `${BUNDLE}/rootfs/proc`,
      '/var/lib/chroot/proc',
    ];
    const host: HostView = { ...ctx().host, fullPseudoFsMounts: () => pseudo };
    const ops = compile(() => {}, { ...ctx(), noPivot: true, host });
    const hidden = find(ops, Op.HIDE_HOST_FS).map((o) => o.fields.path);
    t.same(
      hidden,
      ['/proc/sys/fs/binfmt_misc-not-proc', '/sys', '/proc', '/var/lib/chroot/proc'],
      "every one but the rootfs's own, in the order given",
    );
    const at = codes(ops).indexOf('PIVOT_ROOT');
    t.same(
      codes(ops).slice(at - hidden.length, at),
      hidden.map(() => 'HIDE_HOST_FS'),
      'right before the move of the rootfs',
    );
    t.same(
      find(
        compile(() => {}, { ...ctx(), host }),
        Op.HIDE_HOST_FS,
      ),
      [],
      'none with pivot_root',
    );
  },
);

t.test('readFullPseudoFsMounts: full procfs and sysfs mounts from mountinfo, unescaped, deepest first', async (t) => {
  const { readFullPseudoFsMounts } = await import('../../src/lib/host');
  const mountinfo = [
    '22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw',
    '23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw',
    '40 22 0:35 / /proc/sys/fs/binfmt_misc rw,relatime shared:20 - binfmt_misc binfmt_misc rw',
    '41 1 0:21 /1 /run/some\\040proc rw - proc proc rw',
    '42 1 0:21 / /srv/with\\040space/proc rw - proc proc rw',
    '43 23 0:6 / /sys/kernel/security rw - securityfs securityfs rw',
  ].join('\n');
  t.same(
    readFullPseudoFsMounts(mountinfo),
    ['/srv/with space/proc', '/proc', '/sys'],
    'a sub-tree of proc is not a full mount; other types are not kept',
  );
});

t.test('"lo" is brought up in a network namespace the container makes, not in one it joins or shares', async (t) => {
  t.equal(find(compile(), Op.LOOPBACK_UP).length, 1, 'a new network namespace: lo up');
  const joined = compile((c) => {
    c.linux!.namespaces = c.linux!.namespaces!.map((n) =>
      n.type === 'network' ? { type: 'network', path: '/run/netns/other' } : n,
    );
  });
  t.equal(find(joined, Op.LOOPBACK_UP).length, 0, "a joined one is someone else's");
  const shared = compile((c) => {
    c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'network');
  });
  t.equal(find(shared, Op.LOOPBACK_UP).length, 0, "the host's is left alone");
});

t.test("process attributes: right before the user switch, in runc's order, for the init and each exec", async (t) => {
  const attrs = (c: Config): void => {
    c.process!.scheduler = { policy: 'SCHED_BATCH', nice: -3, flags: ['SCHED_FLAG_RESET_ON_FORK'] };
    c.process!.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 6 };
    c.linux!.personality = { domain: 'LINUX32' };
    c.linux!.memoryPolicy = { mode: 'MPOL_INTERLEAVE', nodes: '0,2-3', flags: ['MPOL_F_STATIC_NODES'] };
  };
  const ops = compile(attrs);
  const order = codes(ops);
  const at = (name: string): number => order.indexOf(name);
  t.ok(
    at('SCHEDULER') < at('IOPRIO') && at('IOPRIO') < at('PERSONALITY') && at('PERSONALITY') < at('MEMPOLICY'),
    'scheduler, I/O priority, personality, memory policy',
  );
  t.ok(at('MEMPOLICY') < at('USER') && at('SCHEDULER') > at('PIVOT_ROOT'), 'after the rootfs, before the user switch');
  t.ok(at('MEMPOLICY') < at('CHDIR'), "before runc's finalizeNamespace (the first chdir)");
  t.notOk(order.includes('CPU_AFFINITY'), 'execCPUAffinity is not applicable to the init');
  t.same(find(ops, Op.SCHEDULER)[0].fields, {
    policy: 3,
    flags: 1n,
    nice: -3 >>> 0,
    priority: 0,
    runtime: 0n,
    deadline: 0n,
    period: 0n,
    cpusetLimited: 0,
  });
  t.same(find(ops, Op.IOPRIO)[0].fields, { value: (2 << 13) | 6 });
  t.same(find(ops, Op.PERSONALITY)[0].fields, { persona: 8 });
  const mempolicy = find(ops, Op.MEMPOLICY)[0].fields;
  t.equal(mempolicy.mode, 3 | (1 << 15), 'mode | MPOL_F_STATIC_NODES');
  t.equal(mempolicy.maxnode, 1024);
  t.equal((mempolicy.nodemask as Buffer).length, 128, 'a nodemask of 1024 bits');
  t.equal((mempolicy.nodemask as Buffer)[0], 0b1101, 'nodes 0, 2 and 3');
  const local = find(
    compile((c) => {
      c.linux!.memoryPolicy = { mode: 'MPOL_LOCAL' };
    }),
    Op.MEMPOLICY,
  )[0].fields;
  t.same(
    { mode: local.mode, maxnode: local.maxnode, mask: (local.nodemask as Buffer).length },
    { mode: 4, maxnode: 0, mask: 0 },
    'no nodes: a NULL mask',
  );

  const config = baseConfig();
  attrs(config);
  const exec = (affinity?: { initial?: string; final?: string }): PlanOp[] =>
    compileExecPlan(
      { ...config.process!, execCPUAffinity: affinity },
      { differing: {} },
      {
        cgroupTargets: { joins: ['/sys/fs/cgroup/cpuset/c1'] },
        container: { personality: config.linux!.personality, memoryPolicy: config.linux!.memoryPolicy },
      },
    );
  const both = exec({ initial: '1', final: '0,2' });
  const execOrder = codes(both);
  t.equal(execOrder[0], 'CPU_AFFINITY', 'initial: first, before the cgroups are joined');
  t.equal(execOrder[1], 'JOIN_CGROUP');
  const initial = find(both, Op.CPU_AFFINITY)[0];
  t.same(initial.fields.stage, 0);
  t.equal(initial.fields.mask.length, 1024, 'a cpumask of 8192 bits');
  t.equal(initial.fields.mask[0], 0b10);
  const final = both.filter((o) => o.op === Op.CPU_AFFINITY)[1];
  t.same(
    { stage: final.fields.stage, first: (final.fields.mask as Buffer)[0] },
    { stage: 1, first: 0b101 },
    'final: CPUs 0 and 2',
  );
  t.ok(
    execOrder.lastIndexOf('CPU_AFFINITY') > execOrder.indexOf('CLONE_INIT'),
    'final: once the process is in the cgroups',
  );
  t.ok(
    execOrder.indexOf('PERSONALITY') > 0 && execOrder.indexOf('MEMPOLICY') < execOrder.indexOf('USER'),
    "the container's personality and memory policy",
  );
  const none = exec(undefined).filter((o) => o.op === Op.CPU_AFFINITY);
  t.same(
    none.map((o) => o.fields.stage),
    [2],
    'neither: one reset, after the cgroups',
  );
  t.ok(
    (none[0].fields.mask as Buffer).every((b) => b === 0xff),
    '...to every CPU',
  );
  t.same(
    exec({ initial: '1' })
      .filter((o) => o.op === Op.CPU_AFFINITY)
      .map((o) => o.fields.stage),
    [0],
    'initial only: the cgroups narrow it, nothing resets it',
  );
  t.same(decodePlan(encodePlan(both)), both, 'round-trips');
});

t.test('a read-only /dev: mounted writable, made read-only after the console', async (t) => {
  const ops = compile(
    (c) => {
      const dev = c.mounts!.find((m) => m.destination === '/dev')!;
      dev.options = [...(dev.options ?? []), 'ro'];
      c.process!.terminal = true;
    },
    { ...ctx(), consoleSocket: true },
  );
  const dev = find(ops, Op.MOUNT).find((m) => m.fields.dest === 'dev')!;
  t.equal((dev.fields.attrSet as number) & MOUNT_ATTR.RDONLY, 0, 'mounted writable');
  t.same(find(ops, Op.REMOUNT_RO)[0].fields, { path: '/dev' });
  const order = codes(ops);
  t.ok(order.indexOf('REMOUNT_RO') > order.indexOf('CONSOLE'), 'after /dev/console is made');
  t.ok(order.indexOf('REMOUNT_RO') > order.lastIndexOf('MKNOD'), 'after the devices');
  t.same(find(compile(), Op.REMOUNT_RO), [], 'a writable /dev: nothing');
});

t.test(
  "a user namespace: bind mounts are taken by the mount-source server, inside the container's mount namespace",
  async (t) => {
    const userns = (c: Config): void => {
      c.linux!.namespaces!.push({ type: 'user' });
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    };
    const data = (c: Config): void => {
      c.mounts!.push({ destination: '/data', type: 'bind', source: '/volumes/data', options: ['rbind', 'ro'] });
    };
    const ops = compile(
      (c) => {
        userns(c);
        data(c);
      },
      ctx({ '/volumes/data': 'dir' }),
    );
    const prepare = find(ops, Op.IDMAP_PREPARE).find((o) => o.fields.source === '/volumes/data')!;
    t.match(prepare.fields, { uidMap: '', gidMap: '', recursiveBind: 1 }, 'no maps: a plain bind');
    t.equal((prepare.fields.attrSet as number) & MOUNT_ATTR.RDONLY, MOUNT_ATTR.RDONLY, 'its options applied there');
    const order = codes(ops);
    t.equal(
      order[0],
      'MOUNT_SOURCE_SERVER',
      'the server is forked before anything else (host namespaces, caller cgroup)',
    );
    t.ok(
      order.indexOf('MOUNT_SOURCES_JOIN') > order.indexOf('UNSHARE'),
      "joined once the mount namespace is the container's",
    );
    t.ok(order.indexOf('IDMAP_PREPARE') > order.indexOf('MOUNT_SOURCES_JOIN'), 'the tree taken there');
    t.ok(order.indexOf('MOUNT_SOURCES_DONE') > order.indexOf('IDMAP_PREPARE'), 'then the server ends');
    t.ok(order.indexOf('MOUNT_SOURCES_DONE') < order.indexOf('CLONE_INIT'), 'before the init exists');
    t.equal(find(compile(userns), Op.MOUNT_SOURCE_SERVER).length, 0, 'no binds: no server');
    t.match(find(ops, Op.MOUNT).find((m) => m.fields.dest === 'data')!.fields, {
      kind: MountKind.PREPARED,
      slot: prepare.fields.slot,
    });
    t.equal(
      find(compile(data, ctx({ '/volumes/data': 'dir' })), Op.IDMAP_PREPARE).length,
      0,
      'without a user namespace: bound in place',
    );
  },
);

t.test('no mount namespace of its own: the host\'s "/" left alone, a chroot, no host fs hidden', async (t) => {
  const hostNs = (c: Config): void => {
    c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'mount');
  };
  const host: HostView = {
    ...ctx().host,
    fullPseudoFsMounts: () => ['/proc'],
    isHostNamespace: (p) => p === '/proc/1/ns/mnt',
  };
  for (const [label, mutate] of [
    ['none listed', hostNs],
    [
      'our own joined by path',
      (c: Config) => {
        hostNs(c);
        c.linux!.namespaces!.push({ type: 'mount', path: '/proc/1/ns/mnt' });
      },
    ],
  ] as const) {
    const { ops, hostMounts } = compileCreatePlan(
      (() => {
        const c = baseConfig();
        mutate(c);
        return c;
      })(),
      { ...ctx(), host, noPivot: true },
    );
    t.ok(hostMounts, `${label}: its mounts are the host's`);
    t.equal(find(ops, Op.ROOTFS_PREPARE)[0].fields.propagation, 0, `${label}: "/" is not made slave`);
    t.equal(find(ops, Op.PIVOT_ROOT)[0].fields.mode, 2, `${label}: a chroot`);
    t.same(find(ops, Op.HIDE_HOST_FS), [], `${label}: nothing of the host's is detached, even with --no-pivot`);
    t.notOk(
      (find(ops, Op.UNSHARE)[0].fields.flags as bigint) & BigInt(CLONE_FLAGS.mount),
      `${label}: no new mount namespace`,
    );
  }
  const joined = baseConfig();
  joined.linux!.namespaces = [
    ...joined.linux!.namespaces!.filter((n) => n.type !== 'mount'),
    { type: 'mount', path: '/run/ns/other' },
  ];
  const other = compileCreatePlan(joined, { ...ctx(), host });
  t.notOk(other.hostMounts, "another mount namespace joined by path: used as the container's");
  t.equal(find(other.ops, Op.PIVOT_ROOT)[0].fields.mode, 0, 'pivot_root there, as runc');
  const image = baseConfig();
  hostNs(image);
  t.throws(
    () => compileCreatePlan(image, { ...ctx(), host, imageRootfs: true }),
    /^linux\.namespaces: an image's rootfs is mounted only in a mount namespace/,
  );
});

t.test(
  "netDevices into the host's own network namespace, joined by path: refused (it would only rename the interface on the host)",
  async (t) => {
    const host: HostView = { ...ctx().host, isHostNamespace: (p) => p === '/proc/1/ns/net' };
    const config = baseConfig();
    config.linux!.namespaces = [
      ...config.linux!.namespaces!.filter((n) => n.type !== 'network'),
      { type: 'network', path: '/proc/1/ns/net' },
    ];
    config.linux!.netDevices = { eth9: {} };
    t.throws(
      () => compileCreatePlan(config, { ...ctx(), host }),
      /^linux\.netDevices: the network namespace joined is the host's/,
    );
    config.linux!.namespaces = [
      ...config.linux!.namespaces!.filter((n) => n.type !== 'network'),
      { type: 'network', path: '/run/netns/other' },
    ];
    t.doesNotThrow(() => compileCreatePlan(config, { ...ctx(), host }), 'another namespace joined by path: fine');
  },
);
