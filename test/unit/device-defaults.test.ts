/**
 * runc's default device rules less those of the nodes a config's
 * linux.devices replaced (src/lib/cgroup/devices.ts), and how that choice
 * survives from create to update: saved in the cgroup state, read back by
 * cgroupManagerFrom, applied by the same writers.  Files in memory, no root.
 */
import { spawnSync } from 'child_process';
import t from 'tap';
import { cgroupManagerFor, cgroupManagerFrom, type CgroupHost } from '../../src/lib/cgroup';
import {
  DEFAULT_DEVICE_RULES,
  defaultDeviceRules,
  effectiveDeviceRules,
  replacedDefaultDevices,
} from '../../src/lib/cgroup/devices';
import { compileDeviceInsns, compileDeviceProgram, evaluate } from '../../src/lib/cgroup/devices-bpf';
import { type Hierarchy } from '../../src/lib/cgroup/manager';
import { type Config } from '../../src/lib/config';
import { DEFAULT_DEVICES as PLAN_DEFAULT_DEVICES } from '../../src/lib/plan';

t.test('replacedDefaultDevices: the default nodes linux.devices names again, in runc order', async (t) => {
  t.same(replacedDefaultDevices(undefined), []);
  t.same(replacedDefaultDevices([{ path: '/dev/fuse' }]), [], 'not a default node');
  t.same(replacedDefaultDevices([{ path: '/dev/zero' }, { path: '/dev/null' }, { path: '/dev/null' }]), [
    '/dev/null',
    '/dev/zero',
  ]);
  t.same(replacedDefaultDevices([{ path: '/dev/pts/0' }, { path: '/dev/ptmx' }]), [], 'rules without a path stay');
});

t.test('defaultDeviceRules: the whole list, or less the replaced nodes', async (t) => {
  t.same(defaultDeviceRules(), DEFAULT_DEVICE_RULES);
  const less = defaultDeviceRules(['/dev/null', '/dev/urandom']);
  t.equal(less.length, DEFAULT_DEVICE_RULES.length - 2);
  t.notOk(
    less.some((r) => r.type === 'c' && r.major === 1 && (r.minor === 3 || r.minor === 9)),
    'no rule for 1:3 or 1:9',
  );
  t.ok(
    less.some((r) => r.type === 'c' && r.major === 1 && r.minor === 5),
    '/dev/zero kept',
  );
});

/** Cgroup files in memory: every write recorded, a directory made on demand. */
function memoryHost() {
  const writes: string[] = [];
  const programs: Buffer[] = [];
  const dirs = new Set<string>();
  const host: CgroupHost = {
    files: {
      read: () => undefined,
      write: (file, value) => {
        writes.push(`${file} ${value}`);
      },
      exists: (p) => dirs.has(p),
      mkdir: (d) => {
        dirs.add(d);
      },
      rmdir: (d) => {
        dirs.delete(d);
      },
      subdirs: () => [],
      entries: () => [],
    },
    sleep: () => {},
    attachDeviceProgram: (_dir, program) => {
      programs.push(program);
    },
    mayUseCgroup: () => true,
  };
  return { host, writes, programs };
}

const REPLACES_NULL = {
  linux: {
    devices: [{ path: '/dev/null', type: 'c', major: 1, minor: 3 }],
    resources: { devices: [{ allow: false, access: 'rwm' }] },
  },
} as unknown as Config;

t.test('cgroupfs v1: create and a later update write the same defaults, without /dev/null', async (t) => {
  const hierarchies: Hierarchy[] = [{ mountPoint: '/mem/devices', root: '/', version: 1, controllers: ['devices'] }];
  const { host, writes } = memoryHost();
  const created = cgroupManagerFor(REPLACES_NULL, 'c1', { systemd: false }, hierarchies, host);
  created.set(REPLACES_NULL.linux!.resources);
  const state = created.describe();
  t.same(state.replacedDefaultDevices, ['/dev/null'], 'saved in the state');
  const atCreate = writes.splice(0);
  t.notOk(
    atCreate.some((w) => / c 1:3 /.test(w)),
    'no rule for 1:3 at create',
  );
  t.ok(
    atCreate.some((w) => w.endsWith('devices.allow c 1:5 rwm')),
    '/dev/zero allowed',
  );

  const later = cgroupManagerFrom(JSON.parse(JSON.stringify(state)), hierarchies, host);
  later.update({ devices: [{ allow: false, access: 'rwm' }] });
  t.same(writes, atCreate, 'update -r writes what create wrote');
});

t.test('cgroupfs v1: a config that replaces nothing saves nothing, and gets every default', async (t) => {
  const hierarchies: Hierarchy[] = [{ mountPoint: '/mem/devices', root: '/', version: 1, controllers: ['devices'] }];
  const { host, writes } = memoryHost();
  const created = cgroupManagerFor({ linux: {} } as Config, 'c1', { systemd: false }, hierarchies, host);
  created.set({ devices: [] });
  t.notOk('replacedDefaultDevices' in created.describe());
  t.ok(writes.some((w) => w.endsWith('devices.allow c 1:3 rwm')));
});

t.test("cgroupfs v2: the filter built at update from the saved state refuses /dev/null's numbers", async (t) => {
  const hierarchies: Hierarchy[] = [{ mountPoint: '/sys/fs/cgroup', root: '/', version: 2, controllers: ['pids'] }];
  const { host, programs } = memoryHost();
  const created = cgroupManagerFor(REPLACES_NULL, 'c1', { systemd: false }, hierarchies, host);
  const state = created.describe();
  t.same(state.replacedDefaultDevices, ['/dev/null']);
  cgroupManagerFrom(state, hierarchies, host).update({ devices: [{ allow: false, access: 'rwm' }] });
  t.equal(programs.length, 1);
  const expected = effectiveDeviceRules([
    { allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' },
    ...defaultDeviceRules(['/dev/null']),
  ]);
  t.same(programs[0], compileDeviceProgram(expected), 'the program of the defaults less /dev/null');
  t.notOk(evaluate(compileDeviceInsns(expected), 'c', 'rw', 1, 3));
  t.ok(evaluate(compileDeviceInsns(expected), 'c', 'rw', 1, 5));
});

t.test('systemd: the state read back keeps the replaced nodes', async (t) => {
  const hierarchies: Hierarchy[] = [{ mountPoint: '/sys/fs/cgroup', root: '/', version: 2, controllers: ['pids'] }];
  const { host } = memoryHost();
  const state = {
    driver: 'v2' as const,
    manager: 'systemd' as const,
    unit: 'tsrun-c1.scope',
    slice: 'system.slice',
    paths: { '/sys/fs/cgroup': '/sys/fs/cgroup/system.slice/tsrun-c1.scope' },
    replacedDefaultDevices: ['/dev/null'],
  };
  const manager = cgroupManagerFrom(state, hierarchies, host);
  t.same(manager.describe(), state);
});

t.test('a type "a" rule with less than rwm: taken as every access, with a warning naming it', async (t) => {
  const devices = require.resolve('../../src/lib/cgroup/devices');
  const script = `require(${JSON.stringify(devices)}).parseDeviceRules([{ allow: true, access: 'rwm' }, { allow: false, type: 'a', access: 'r' }])`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  t.equal(run.status, 0);
  t.match(
    run.stderr,
    /warning: linux\.resources\.devices\[1\]: a rule of type "a" allows or denies every access; its access "r" is ignored/,
  );
  t.notMatch(run.stderr, /devices\[0\]/, 'not for one with rwm');
});

t.test("plan.ts's default nodes are the ones whose rules devices.ts leaves out when replaced", async (t) => {
  t.same([...replacedDefaultDevices(PLAN_DEFAULT_DEVICES)].sort(), PLAN_DEFAULT_DEVICES.map((d) => d.path).sort());
  for (const node of PLAN_DEFAULT_DEVICES) {
    const left = DEFAULT_DEVICE_RULES.filter((r) => !defaultDeviceRules([node.path]).includes(r));
    t.same(
      left.map((r) => [r.type, r.major, r.minor]),
      [[node.type, node.major, node.minor]],
      `${node.path}: its own rule, by its numbers`,
    );
  }
});
