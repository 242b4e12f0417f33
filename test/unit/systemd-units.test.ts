/**
 * The systemd cgroup manager's naming and properties
 * (src/lib/cgroup/systemd-units.ts), following runc's docs/systemd.md.
 * No systemd needed.
 */
import t from 'tap';
import {
  annotationProperties,
  baseProperties,
  cpuQuotaPerSecUSec,
  deviceGroup,
  deviceProperties,
  expandSlice,
  rangeToMask,
  resourceProperties,
  systemdUnitFor,
  systemdVersionNumber,
} from '../../src/lib/cgroup/systemd-units';
import { DEFAULT_DEVICE_RULES, effectiveDeviceRules, parseDeviceRules } from '../../src/lib/cgroup/devices';
import { userBusSocket } from '../../src/lib/cgroup/systemd';

const props = (list: Array<[string, { signature: string; value: unknown }]>): Record<string, unknown> =>
  Object.fromEntries(
    list.map(([k, v]) => [
      k,
      `${v.signature} ${JSON.stringify(v.value, (_k, x) => (typeof x === 'bigint' ? `${x}` : x))}`,
    ]),
  );

t.test('slices nest by their dashes', async (t) => {
  t.equal(expandSlice('system.slice'), '/system.slice');
  t.equal(expandSlice('user-1000.slice'), '/user.slice/user-1000.slice');
  t.equal(expandSlice('a-b-c.slice'), '/a.slice/a-b.slice/a-b-c.slice');
  t.equal(expandSlice('-.slice'), '/', 'the root slice');
  for (const bad of ['system', '.slice', 'a--b.slice', '-a.slice', 'a-.slice', 'user.slice/x.slice', 'a b.slice'])
    t.throws(() => expandSlice(bad), /linux\.cgroupsPath: .* is not a slice name/, bad);
});

t.test('cgroupsPath "slice:prefix:name" names the unit and its cgroup', async (t) => {
  t.same(systemdUnitFor('system.slice:docker:abc', 'abc'), {
    slice: 'system.slice',
    name: 'docker-abc.scope',
    cgroupPath: '/system.slice/docker-abc.scope',
  });
  t.same(systemdUnitFor('machine.slice:libpod:c1', 'c1').cgroupPath, '/machine.slice/libpod-c1.scope');
  t.same(
    systemdUnitFor('kubepods-besteffort.slice:cri-containerd:x', 'x').cgroupPath,
    '/kubepods.slice/kubepods-besteffort.slice/cri-containerd-x.scope',
  );
  t.same(
    systemdUnitFor(':p:n', 'n'),
    { slice: 'system.slice', name: 'p-n.scope', cgroupPath: '/system.slice/p-n.scope' },
    'the slice defaults to system.slice',
  );
  t.same(
    systemdUnitFor(undefined, 'c9'),
    { slice: 'system.slice', name: 'tsrun-c9.scope', cgroupPath: '/system.slice/tsrun-c9.scope' },
    'none: :tsrun:<id>',
  );
  t.same(systemdUnitFor('-.slice:p:n', 'n').cgroupPath, '/p-n.scope', 'in the root slice');
  t.same(
    systemdUnitFor('system.slice:ignored:pod-a.slice', 'x'),
    { slice: 'system.slice', name: 'pod-a.slice', cgroupPath: '/pod.slice/pod-a.slice' },
    'a slice of its own, by its own name',
  );
  t.throws(() => systemdUnitFor('/sys/fs/cgroup/x', 'x'), /is not "slice:prefix:name"/);
  t.throws(() => systemdUnitFor('system.slice:p:', 'x'), /names no unit/);
  t.throws(() => systemdUnitFor('system.slice:p:a/b', 'x'), /not a unit name systemd takes/);
});

t.test("a user's manager: user.slice by default, below the manager's own cgroup", async (t) => {
  const user = { defaultSlice: 'user.slice', controlGroup: '/user.slice/user-1000.slice/user@1000.service' };
  t.same(systemdUnitFor(undefined, 'c9', user), {
    slice: 'user.slice',
    name: 'tsrun-c9.scope',
    cgroupPath: '/user.slice/user-1000.slice/user@1000.service/user.slice/tsrun-c9.scope',
  });
  t.same(
    systemdUnitFor('app-x.slice:p:n', 'n', user).cgroupPath,
    '/user.slice/user-1000.slice/user@1000.service/app.slice/app-x.slice/p-n.scope',
  );
  t.same(
    systemdUnitFor(':p:own.slice', 'n', user).cgroupPath,
    '/user.slice/user-1000.slice/user@1000.service/own.slice',
  );
});

t.test("the user's session bus: DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus", async (t) => {
  const none = () => false;
  t.equal(userBusSocket({ DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus' }, none), '/run/user/1000/bus');
  t.equal(
    userBusSocket({ DBUS_SESSION_BUS_ADDRESS: 'unix:abstract=/tmp/x,guid=1;unix:guid=2,path=/tmp/a%20b' }, none),
    '/tmp/a b',
    'the first unix:path among several, unescaped',
  );
  t.throws(() => userBusSocket({ DBUS_SESSION_BUS_ADDRESS: 'tcp:host=h,port=1' }, none), /has no unix:path= address/);
  t.equal(
    userBusSocket({ XDG_RUNTIME_DIR: '/run/user/7/' }, (p) => p === '/run/user/7/bus'),
    '/run/user/7/bus',
  );
  t.throws(
    () => userBusSocket({ XDG_RUNTIME_DIR: '/run/user/7' }, none),
    /DBUS_SESSION_BUS_ADDRESS is not set and \/run\/user\/7\/bus does not exist/,
  );
  t.throws(() => userBusSocket({}, none), /XDG_RUNTIME_DIR is not set/);
});

t.test("systemd's Version as runc reads it: the leading number, a v dropped", async (t) => {
  t.equal(systemdVersionNumber('252.39-1~deb12u1'), 252);
  t.equal(
    systemdVersionNumber('v257.1-1.fc42'),
    257,
    'with parseInt this was 0: every property of systemd 240+ left out',
  );
  t.equal(systemdVersionNumber('"v245"'), 245);
  t.equal(systemdVersionNumber('249'), 249);
  t.equal(systemdVersionNumber('unknown'), undefined);
});

t.test('every unit: its slice, Delegate, accounting on every controller, its pids', async (t) => {
  const scope = systemdUnitFor('system.slice:tsrun:c1', 'c1');
  t.same(props(baseProperties(scope, 'c1', 2, [4242])), {
    Description: 's "tsrun container c1"',
    Slice: 's "system.slice"',
    Delegate: 'b true',
    MemoryAccounting: 'b true',
    CPUAccounting: 'b true',
    IOAccounting: 'b true',
    TasksAccounting: 'b true',
    DefaultDependencies: 'b false',
    PIDs: 'au [4242]',
  });
  const slice = systemdUnitFor('system.slice:x:pod.slice', 'c1');
  const v1 = props(baseProperties(slice, 'c1', 1, []));
  t.equal(v1.Wants, 'as ["system.slice"]', 'a slice wants its parent');
  t.equal(v1.BlockIOAccounting, 'b true', 'cgroup v1 calls it BlockIOAccounting');
  t.notOk('Delegate' in v1 || 'PIDs' in v1);
});

t.test('resources as properties, cgroup v2', async (t) => {
  t.same(
    props(
      resourceProperties(
        {
          memory: { limit: 2 ** 30, reservation: 2 ** 20, swap: 2 ** 31 },
          cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1,3', mems: '0' },
          pids: { limit: 100 },
        },
        2,
        252,
      ),
    ),
    {
      MemoryMax: 't "1073741824"',
      MemoryLow: 't "1048576"',
      MemorySwapMax: 't "1073741824"', // swap is memory+swap; systemd wants the swap alone
      CPUWeight: 't "39"',
      TasksMax: 't "100"',
      CPUQuotaPeriodUSec: 't "100000"',
      CPUQuotaPerSecUSec: 't "500000"',
      AllowedCPUs: 'ay [11]',
      AllowedMemoryNodes: 'ay [1]',
    },
  );
  t.same(
    props(resourceProperties({ memory: { limit: -1 }, pids: { limit: -1 } }, 2, 252)),
    {
      MemoryMax: 't "18446744073709551615"',
      TasksMax: 't "18446744073709551615"',
    },
    '-1 is infinity',
  );
  t.same(props(resourceProperties({ cpu: { cpus: '0' } }, 2, 243)), {}, 'AllowedCPUs needs systemd 244');
  t.same(props(resourceProperties({}, 2, 252)), {});
  t.same(props(resourceProperties(undefined, 2, 252)), {});
});

t.test('resources as properties, cgroup v1', async (t) => {
  t.same(
    props(resourceProperties({ memory: { limit: 1 << 20 }, cpu: { shares: 512 }, blockIO: { weight: 300 } }, 1, 252)),
    {
      MemoryLimit: 't "1048576"',
      CPUShares: 't "512"',
      BlockIOWeight: 't "300"',
    },
  );
});

t.test('CPU quota per second in steps of 10 ms, rounded up', async (t) => {
  t.equal(cpuQuotaPerSecUSec(50000, 100000), 500000n);
  t.equal(cpuQuotaPerSecUSec(1, 100000), 10000n, 'the smallest step');
  t.equal(cpuQuotaPerSecUSec(123456, 100000), 1240000n);
});

t.test('CPU lists as bitmasks, byte i bit j for number 8i+j', async (t) => {
  t.same(rangeToMask('0', 'f'), [1]);
  t.same(rangeToMask('0-3,7', 'f'), [0x8f]);
  t.same(rangeToMask('9', 'f'), [0, 2]);
  t.same(rangeToMask('0-15', 'f'), [255, 255]);
  t.throws(() => rangeToMask('a-b', 'linux.resources.cpu.cpus'), /linux\.resources\.cpu\.cpus: "a-b" is not a list/);
  t.throws(() => rangeToMask('3-1', 'f'), /not a range/);
});

t.test(
  'org.systemd.property.* annotations: unit properties, *Sec in microseconds, errors naming the key',
  async (t) => {
    t.same(
      props(
        annotationProperties({
          'org.systemd.property.TimeoutStopUSec': 'uint64 123456789',
          'org.systemd.property.CollectMode': "'inactive-or-failed'",
          'org.systemd.property.TimeoutStopSec': '5',
          'org.systemd.property.RuntimeMaxSec': 'double 1.5',
          'org.example.other': 'ignored',
        }),
      ),
      {
        CollectMode: 's "inactive-or-failed"',
        RuntimeMaxUSec: 't "1500000"',
        TimeoutStopUSec: 't "123456789"',
      },
      'in key order: the given TimeoutStopUSec comes after the one made from TimeoutStopSec, and systemd keeps the last',
    );
    t.same(annotationProperties(undefined), []);
    t.same(annotationProperties({ 'io.kubernetes.x': 'y' }), []);
    t.same(
      annotationProperties({
        'org.systemd.property.TimeoutStopUSec': 'uint64 7',
        'org.systemd.property.TimeoutStopSec': '1',
      }).map(([k]) => k),
      ['TimeoutStopUSec', 'TimeoutStopUSec'],
      'both are sent, in key order (runc sends them in map order): systemd keeps the last',
    );
    t.same(
      props(annotationProperties({ 'org.systemd.property.USec': '1' })),
      { USec: 'i 1' },
      '"USec" is no *Sec name',
    );
    t.throws(
      () => annotationProperties({ 'org.systemd.property.Ab': 'true' }),
      /annotations\["org\.systemd\.property\.Ab"\]: "Ab" is not a unit property name/,
    );
    t.throws(
      () => annotationProperties({ 'org.systemd.property.Cpu1Weight': '1' }),
      /"Cpu1Weight" is not a unit property name \(three or more letters, nothing else\)/,
    );
    t.throws(
      () => annotationProperties({ 'org.systemd.property.CollectMode': 'inactive' }),
      /annotations\["org\.systemd\.property\.CollectMode"\]: "inactive" is not a GVariant text value/,
    );
    t.throws(
      () => annotationProperties({ 'org.systemd.property.TimeoutStopSec': "'5'" }),
      /a property in seconds wants a number, not a value of type s/,
    );
  },
);

/** The config's rules and runc's defaults, as tsrun sends them. */
const withDefaults = (rules: Parameters<typeof parseDeviceRules>[0]) => [
  ...parseDeviceRules(rules),
  ...DEFAULT_DEVICE_RULES,
];
const NO_HOST = {
  procDevices: () => {
    throw new Error('not read from systemd 240 on');
  },
  exists: () => {
    throw new Error('not looked at from systemd 240 on');
  },
};

t.test("device rules as DevicePolicy and DeviceAllow, in runc's order and names", async (t) => {
  const runcSpec = deviceProperties(withDefaults([{ allow: false, access: 'rwm' }]), 252, NO_HOST);
  t.same(runcSpec.warnings, []);
  t.same(props(runcSpec.properties.slice(0, 2)), { DeviceAllow: 'a(ss) []', DevicePolicy: 's "strict"' });
  t.same(
    runcSpec.properties[2][1].value,
    [
      ['block-*', 'm'],
      ['char-*', 'm'],
      ['/dev/char/1:3', 'rwm'],
      ['/dev/char/1:5', 'rwm'],
      ['/dev/char/1:7', 'rwm'],
      ['/dev/char/1:8', 'rwm'],
      ['/dev/char/1:9', 'rwm'],
      ['/dev/char/5:0', 'rwm'],
      ['/dev/char/5:2', 'rwm'],
      ['/dev/char/10:200', 'rwm'],
      ['char-136', 'rwm'],
    ],
    'the empty DeviceAllow first clears what an existing unit had',
  );
  t.equal(runcSpec.properties[0][0], 'DeviceAllow');

  const noRules = deviceProperties(withDefaults([]), 252, NO_HOST);
  t.same(noRules, runcSpec, 'no rules at all: the same deny-all start with the defaults');

  const allowAll = deviceProperties(withDefaults([{ allow: true, access: 'rwm' }]), 252, NO_HOST);
  t.same(props(allowAll.properties), { DeviceAllow: 'a(ss) []', DevicePolicy: 's "auto"' }, 'privileged: auto');
  t.same(allowAll.warnings, []);

  const denyList = deviceProperties(
    withDefaults([
      { allow: true, access: 'rwm' },
      { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' },
    ]),
    252,
    NO_HOST,
  );
  t.same(props(denyList.properties), { DeviceAllow: 'a(ss) []', DevicePolicy: 's "strict"' }, 'a deny list: strict');
  t.match(denyList.warnings, [/systemd takes no deny list/]);

  const wildMajor = deviceProperties(
    withDefaults([
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', minor: 229, access: 'r' },
      { allow: true, type: 'b', major: 8, access: 'r' },
    ]),
    252,
    NO_HOST,
  );
  t.match(wildMajor.warnings, [/systemd has no name for "c \*:229 r"/]);
  t.notOk(
    (wildMajor.properties[2][1].value as string[][]).some(([name]) => name.includes('229')),
    'a minor of every major is left out',
  );
  t.ok(
    (wildMajor.properties[2][1].value as string[][]).some(([name, access]) => name === 'block-8' && access === 'r'),
    'a major: block-8',
  );
});

t.test('before systemd 240: a major by its /proc/devices group, a missing device left out', async (t) => {
  const procDevices = 'Character devices:\n  1 mem\n  5 /dev/tty\n 10 misc\n136 pts\n\nBlock devices:\n  8 sd\n';
  t.equal(deviceGroup(procDevices, 'c', 136), 'pts');
  t.equal(deviceGroup(procDevices, 'b', 8), 'sd');
  t.equal(deviceGroup(procDevices, 'b', 136), undefined, 'by type');
  const old = deviceProperties(withDefaults([{ allow: false, access: 'rwm' }]), 239, {
    procDevices: () => procDevices,
    exists: (p) => p !== '/dev/char/10:200',
  });
  const allowed = old.properties[2][1].value as string[][];
  t.same(
    allowed.find(([n]) => n === 'char-pts'),
    ['char-pts', 'rwm'],
    'char 136 by its group',
  );
  t.notOk(
    allowed.some(([n]) => n === 'char-136'),
    'not by its number',
  );
  t.notOk(
    allowed.some(([n]) => n === '/dev/char/10:200'),
    'a device not there: left out, as systemd would drop it',
  );
  const noGroup = deviceProperties(withDefaults([{ allow: false, access: 'rwm' }]), 239, {
    procDevices: () => 'Character devices:\n  1 mem\n',
    exists: () => true,
  });
  t.match(noGroup.warnings, [/no char device group of major 136/]);
});

t.test('device rules in order: merged, taken back, reset by "a"; a hole in a wider rule refused', async (t) => {
  const rules = (list: Parameters<typeof parseDeviceRules>[0]) => effectiveDeviceRules(parseDeviceRules(list));
  t.same(
    rules([
      { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'wm' },
      { allow: false, type: 'c', major: 1, minor: 3, access: 'm' },
      { allow: true, type: 'b', major: 1, minor: 3, access: 'r' },
    ]),
    {
      defaultAllow: false,
      exceptions: [
        { allow: true, type: 'b', major: 1, minor: 3, access: 'r' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
      ],
    },
  );
  t.same(
    rules([
      { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
      { allow: true, access: 'rwm' },
      { allow: false, type: 'c', major: 4, access: 'w' },
    ]),
    { defaultAllow: true, exceptions: [{ allow: false, type: 'c', major: 4, minor: -1, access: 'w' }] },
    '"a" drops what came before',
  );
  t.same(
    rules([
      { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
      { allow: false, type: 'c', major: 1, minor: 3, access: 'rwm' },
    ]).exceptions,
    [],
    'all access taken back: no exception',
  );
  t.throws(
    () =>
      rules([
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', access: 'rwm' },
        { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
      ]),
    /linux\.resources\.devices: "c 1:3 w" takes access out of the wider "c \*:\* rwm"/,
  );
  t.doesNotThrow(
    () =>
      rules([
        { allow: true, type: 'c', access: 'r' },
        { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
      ]),
    'nothing the wider rule grants is taken back',
  );
});
