/**
 * The pure parts of rootless support: how the id maps are written
 * (idmap.ts), which cgroups a user's container keeps and what asks for
 * one (cgroup/rootless.ts), and the default --root.  No root, no kernel.
 */
import t from 'tap';
import { defaultStateRoot, rootlessCgroups, rootlessValue } from '../../src/cli/common';
import { inUserNamespace } from '../../src/lib/host';
import { commonAncestor, firstRequestedResource, splitUsable } from '../../src/lib/cgroup/rootless';
import { type IdMapHost, setgroupsDenied, writeIdMaps } from '../../src/lib/idmap';
import { storeMapOf, subordinateRanges } from '../../src/lib/image/user-store';
import { EntryKind, forUserStore, type LayerEntry } from '../../src/lib/image/unpack';
import { compileStoreNamespacePlan } from '../../src/lib/plan';
import { Op, opsOf } from '../../src/lib/plan-format';
import { CLONE_FLAGS } from '../../src/lib/namespaces';

function host(opts: { euid: number; egid?: number; refuse?: string[] }) {
  const done: string[] = [];
  const h: IdMapHost = {
    writeProcFile(path, text) {
      if (opts.refuse?.some((p) => path.endsWith(p)))
        throw Object.assign(new Error(`EPERM: ${path}`), { code: 'EPERM' });
      done.push(`${path}: ${text.trim().replace(/\n/g, ' / ')}`);
    },
    runIdMapTool(tool, args) {
      done.push(`${tool} ${args.join(' ')}`);
    },
    euid: () => opts.euid,
    egid: () => opts.egid ?? opts.euid,
  };
  return { h, done };
}

const own = (id: number) => [{ containerID: 0, hostID: id, size: 1 }];
const ranged = (id: number) => [...own(id), { containerID: 1, hostID: 100000, size: 65536 }];

t.test("a user's own ids: setgroups denied first, then both maps written directly", async (t) => {
  const { h, done } = host({ euid: 1000 });
  writeIdMaps(42, own(1000), own(1000), h);
  t.same(done, ['/proc/42/setgroups: deny', '/proc/42/uid_map: 0 1000 1', '/proc/42/gid_map: 0 1000 1']);
  t.ok(setgroupsDenied(own(1000), 1000, 1000));
});

t.test('ranges the kernel refuses go through newuidmap and newgidmap; setgroups stays allowed', async (t) => {
  const { h, done } = host({ euid: 1000, refuse: ['uid_map', 'gid_map'] });
  writeIdMaps(42, ranged(1000), ranged(1000), h);
  t.same(done, ['newuidmap 42 0 1000 1 1 100000 65536', 'newgidmap 42 0 1000 1 1 100000 65536']);
  t.notOk(setgroupsDenied(ranged(1000), 1000, 1000));
});

t.test('root writes every map itself, and a refusal is an error, not a tool run', async (t) => {
  const { h, done } = host({ euid: 0 });
  writeIdMaps(42, ranged(0), ranged(0), h);
  t.same(done, ['/proc/42/uid_map: 0 0 1 / 1 100000 65536', '/proc/42/gid_map: 0 0 1 / 1 100000 65536']);
  const refused = host({ euid: 0, refuse: ['uid_map'] });
  t.throws(() => writeIdMaps(42, ranged(0), ranged(0), refused.h), /linux\.uidMappings: write \/proc\/42\/uid_map: /);
  t.same(refused.done, []);
  t.notOk(setgroupsDenied(own(0), 0, 0), 'root never denies setgroups');
});

t.test('a tool that fails is said with the field', async (t) => {
  const { h } = host({ euid: 1000, refuse: ['uid_map'] });
  h.runIdMapTool = () => {
    throw new Error('newuidmap 42 0 1000 1 1 1 10 failed (status 1): write to uid_map failed');
  };
  t.throws(() => writeIdMaps(42, ranged(1000), own(1000), h), /^linux\.uidMappings: newuidmap 42 .* failed/);
});

t.test('what asks for a cgroup: any limit but device rules, as runc decides', async (t) => {
  t.equal(firstRequestedResource(undefined), undefined);
  t.equal(firstRequestedResource({ devices: [{ allow: false, access: 'rwm' }] }), undefined);
  t.equal(
    firstRequestedResource({ memory: {}, pids: { limit: 0 }, cpu: { shares: 0 } }),
    undefined,
    'zeros ask nothing',
  );
  t.equal(firstRequestedResource({ memory: {}, pids: { limit: 5 } }), 'pids');
  t.equal(firstRequestedResource({ hugepageLimits: [{ pageSize: '2MB', limit: 0 }] }), 'hugepageLimits');
  t.equal(firstRequestedResource({ unified: { 'memory.max': '1G' } }), 'unified');
});

t.test('the hierarchies a user may use are kept, the rest left out', async (t) => {
  const h = (name: string) => ({
    mountPoint: `/sys/fs/cgroup/${name}`,
    root: '/',
    version: 1 as const,
    controllers: [name],
    dir: `/sys/fs/cgroup/${name}/c1`,
  });
  const { usable, leftOut } = splitUsable([h('pids'), h('memory')], (mp) => mp.endsWith('pids'));
  t.same(
    usable.map((x) => x.controllers[0]),
    ['pids'],
  );
  t.same(
    leftOut.map((x) => x.controllers[0]),
    ['memory'],
  );
});

t.test('the common ancestor of two cgroups, whose cgroup.procs a move between them needs on cgroup v2', async (t) => {
  t.equal(commonAncestor('/sys/fs/cgroup/u/session', '/sys/fs/cgroup/u/c1'), '/sys/fs/cgroup/u');
  t.equal(commonAncestor('/sys/fs/cgroup', '/sys/fs/cgroup/u/c1'), '/sys/fs/cgroup');
  t.equal(commonAncestor('/sys/fs/cgroup/u', '/sys/fs/cgroup/u'), '/sys/fs/cgroup/u');
  t.equal(
    commonAncestor('/sys/fs/cgroup/ab', '/sys/fs/cgroup/a/b'),
    '/sys/fs/cgroup',
    'by whole names, not characters',
  );
});

t.test("--root's default: /run/tsrun for root, $XDG_RUNTIME_DIR/tsrun for a user that has one", async (t) => {
  const host = () => false;
  const userns = () => true;
  t.equal(defaultStateRoot(0, { XDG_RUNTIME_DIR: '/run/user/0' }, host), '/run/tsrun');
  t.equal(defaultStateRoot(1000, { XDG_RUNTIME_DIR: '/run/user/1000/' }, host), '/run/user/1000/tsrun');
  t.equal(defaultStateRoot(1000, {}, host), '/run/tsrun', 'none: /run/tsrun, which then fails naming --root');
  t.equal(
    defaultStateRoot(0, { XDG_RUNTIME_DIR: '/run/user/1000', USER: 'alice' }, userns),
    '/run/user/1000/tsrun',
    "root in a user namespace is the user's, as runc decides",
  );
  t.equal(defaultStateRoot(0, { XDG_RUNTIME_DIR: '/run/user/0', USER: 'root' }, userns), '/run/tsrun');
});

t.test("in a user namespace: /proc/self/uid_map other than all ids to themselves, as runc's test", async (t) => {
  t.equal(
    inUserNamespace(() => '         0          0 4294967295\n'),
    false,
  );
  t.equal(
    inUserNamespace(() => '         0       1000          1\n'),
    true,
  );
  t.equal(
    inUserNamespace(() => '0 0 4294967295\n1 1 1\n'),
    true,
  );
  t.equal(
    inUserNamespace(() => {
      throw new Error('ENOENT');
    }),
    false,
    'no /proc: the host',
  );
});

t.test('--rootless auto: a user, or root in a user namespace unless systemd places the container', async (t) => {
  const cmd = (opts: { rootless?: string; systemdCgroup?: boolean }) =>
    ({ optsWithGlobals: () => opts }) as unknown as Parameters<typeof rootlessCgroups>[0];
  const host = () => false;
  const userns = () => true;
  t.equal(rootlessCgroups(cmd({}), 1000, host), true);
  t.equal(rootlessCgroups(cmd({}), 0, host), false);
  t.equal(rootlessCgroups(cmd({}), 0, userns), true, 'root in a user namespace, cgroupfs: rootless, as runc');
  t.equal(
    rootlessCgroups(cmd({ systemdCgroup: true }), 0, userns),
    true,
    "root in a user namespace, systemd: rootless (the user's own manager), as runc",
  );
  t.equal(rootlessCgroups(cmd({ rootless: 'false' }), 1000, host), false);
  t.equal(rootlessCgroups(cmd({ rootless: 'true' }), 0, host), true);
});

t.test('--rootless is read as runc reads it: auto in any case, empty, or a Go bool', async (t) => {
  t.same(['', 'auto', 'AUTO', 'Auto'].map(rootlessValue), ['auto', 'auto', 'auto', 'auto']);
  t.same(['1', 't', 'TRUE', 'True'].map(rootlessValue), ['true', 'true', 'true', 'true']);
  t.same(['0', 'f', 'FALSE', 'False'].map(rootlessValue), ['false', 'false', 'false', 'false']);
  t.same(['yes', 'tRUE', 'maybe'].map(rootlessValue), [undefined, undefined, undefined]);
});

t.test("a user's image store map: its own id as 0, its ranges from 1, in file order (user-store.ts)", async (t) => {
  const subuid = [
    'alice:100000:65536',
    '# comment',
    'bob:165536:65536',
    '1000:300000:10',
    'alice:400000:0',
    'alice:x:5',
    '',
  ].join('\n');
  t.same(
    subordinateRanges(subuid, 'alice', 1000),
    [
      [100000, 65536],
      [300000, 10],
    ],
    'by name and by uid; an empty or malformed range is no range',
  );
  t.same(subordinateRanges(subuid, undefined, 1001), [], 'nobody of that name or uid');
  t.same(storeMapOf(1000, subordinateRanges(subuid, 'alice', 1000), '/etc/subuid', 'user alice'), [
    { containerID: 0, hostID: 1000, size: 1 },
    { containerID: 1, hostID: 100000, size: 65536 },
    { containerID: 65537, hostID: 300000, size: 10 },
  ]);
  t.throws(() => storeMapOf(1001, [], '/etc/subgid', 'user carol (uid 1001)'), {
    message: /^\/etc\/subgid gives user carol \(uid 1001\) no subordinate ids: .*usermod --add-subuids/,
  });
  const many = Array.from({ length: 400 }, (_, i): [number, number] => [100000 + i * 10, 10]);
  t.equal(storeMapOf(1000, many, '/etc/subuid', 'alice').length, 340, "no more lines than the kernel's 340");
});

t.test(
  "a user's store entries: opaque to user.overlay, no device nodes, no trusted.*, owners within the map",
  async (t) => {
    const entry = (over: Partial<LayerEntry>): LayerEntry => ({
      kind: EntryKind.FILE,
      name: 'a',
      linkname: '',
      mode: 0o644,
      uid: 0,
      gid: 0,
      major: 0,
      minor: 0,
      mtimeSec: 0,
      mtimeNsec: 0,
      xattrs: [],
      ...over,
    });
    const limits = { uid: 65536, gid: 65536 };
    const dropped: string[] = [];
    const drop = (name: string, x: string[]): void => void dropped.push(`${name}: ${x.join(',')}`);
    t.equal(forUserStore(entry({ kind: EntryKind.OPAQUE }), limits, 'l', drop)?.kind, EntryKind.OPAQUE_USER);
    t.equal(forUserStore(entry({ kind: EntryKind.CHAR, major: 1, minor: 3 }), limits, 'l', drop), undefined);
    t.equal(forUserStore(entry({ kind: EntryKind.BLOCK }), limits, 'l', drop), undefined);
    t.equal(forUserStore(entry({ kind: EntryKind.WHITEOUT }), limits, 'l', drop)?.kind, EntryKind.WHITEOUT);
    t.equal(forUserStore(entry({ kind: EntryKind.FIFO }), limits, 'l', drop)?.kind, EntryKind.FIFO);
    const kept = forUserStore(
      entry({
        xattrs: [
          ['trusted.x', Buffer.from('1')],
          ['security.capability', Buffer.from('c')],
        ],
      }),
      limits,
      'l',
      drop,
    );
    t.same(
      kept?.xattrs.map(([k]) => k),
      ['security.capability'],
    );
    t.same(dropped, ['a: trusted.x']);
    t.equal(
      forUserStore(entry({ uid: 65536, gid: 65536 }), limits, 'l', drop)?.uid,
      65536,
      'the top mapped id is kept',
    );
    t.throws(() => forUserStore(entry({ name: 'far', gid: 65537 }), limits, 'layer 2', drop), {
      message: /^layer 2: far: owned by 0:65537, beyond the ids this user's store namespace maps/,
    });
  },
);

t.test('the store namespace plan: a user and mount namespace, root there, then tsrun', async (t) => {
  const ops = compileStoreNamespacePlan(['/usr/bin/tsrun', 'image', 'import', 'x'], ['HOME=/home/a'], '/home/a');
  const codes = ops.map((o) => Op[o.op]);
  t.same(codes.slice(0, 4), ['UNSHARE_USER', 'BECOME_ROOT', 'UNSHARE', 'CLONE_INIT']);
  t.equal(codes.at(-1), 'EXEC');
  t.notOk(codes.includes('CAPS_BOUNDING') || codes.includes('NO_NEW_PRIVS'), "root's capabilities there are kept");
  const unshare = opsOf(ops, Op.UNSHARE)[0];
  t.equal(unshare.fields.flags, BigInt(CLONE_FLAGS.mount));
  const exec = opsOf(ops, Op.EXEC_PREPARE)[0];
  t.same(exec.fields.argv, ['/usr/bin/tsrun', 'image', 'import', 'x']);
  t.same(opsOf(ops, Op.USER)[0].fields, { uid: 0, gid: 0, umask: 0o022, groups: [] });
});
