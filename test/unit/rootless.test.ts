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
  t.equal(rootlessCgroups(cmd({ systemdCgroup: true }), 0, userns), false);
  t.equal(rootlessCgroups(cmd({ rootless: 'false' }), 1000, host), false);
  t.equal(rootlessCgroups(cmd({ rootless: 'true' }), 0, host), true);
});

t.test('--rootless is read as runc reads it: auto in any case, empty, or a Go bool', async (t) => {
  t.same(['', 'auto', 'AUTO', 'Auto'].map(rootlessValue), ['auto', 'auto', 'auto', 'auto']);
  t.same(['1', 't', 'TRUE', 'True'].map(rootlessValue), ['true', 'true', 'true', 'true']);
  t.same(['0', 'f', 'FALSE', 'False'].map(rootlessValue), ['false', 'false', 'false', 'false']);
  t.same(['yes', 'tRUE', 'maybe'].map(rootlessValue), [undefined, undefined, undefined]);
});
