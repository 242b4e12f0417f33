/**
 * A deterministic fuzzer for everything `create` does with config.json
 * before it needs root: parseConfig, compileCreatePlan against a fake
 * HostView, encodePlan, decodePlan; plus the two other consumers of
 * user-written JSON on the same road: exec's process (checkProcess,
 * compileExecPlan) and linux.resources (cgroupsPath, the cgroup drivers'
 * set(), writing into a scratch directory, and the device-rule compiler).
 *
 * Each case starts from a valid config (the busybox fixture, `tsrun spec`
 * output, the integration tests' base config, and a config that uses every
 * section) and applies a few seeded mutations: deleted fields, wrong types,
 * extreme numbers, hostile strings, duplicated entries, unknown fields, and
 * plausible-but-wrong entries for each section.  Every case must end in one
 * of two ways:
 *   - a plan that survives encodePlan/decodePlan unchanged, or
 *   - a ConfigError / TsrunError whose message is one line naming a field.
 * Anything else fails: a TypeError or RangeError, a plain Error from the
 * encoder, a message with "undefined" or "[object ...]" in it, a plan that
 * decodes differently or that the helper would misread (an empty or
 * unnormalised path under the rootfs, a time offset in exponent notation,
 * a hook timeout whose milliseconds overflow), a cgroup knob written with
 * "undefined" or "[object Object]", or a cgroup write outside the cgroup
 * directory.  Each kind of failure is printed once, with the first case's
 * mutations, its config and a command to replay it.
 *
 * TSRUN_FUZZ_SEED=n picks another seed; TSRUN_FUZZ_CASES=n another case
 * count; TSRUN_FUZZ_CASE=i runs case i alone (with the config printed);
 * TSRUN_FUZZ_STATS=1 lists the most common rejections.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { CAPABILITIES } from '../../src/lib/capabilities';
import { cgroupRelativePath, type Hierarchy } from '../../src/lib/cgroup/manager';
import { DEFAULT_DEVICE_RULES } from '../../src/lib/cgroup/devices';
import { type CgroupFiles, hostFiles } from '../../src/lib/cgroup/files';
import { V1Writer } from '../../src/lib/cgroup/v1';
import { V2Writer } from '../../src/lib/cgroup/v2';
import {
  checkProcess,
  type Config,
  ConfigError,
  HOOK_NAMES,
  IOPRIO_CLASSES,
  MPOL_MODES,
  NAMESPACE_TYPES,
  parseConfig,
  type Process,
  RLIMIT_TYPES,
  ROOTFS_PROPAGATIONS,
  SCHED_POLICIES,
} from '../../src/lib/config';
import { TsrunError } from '../../src/lib/errors';
import {
  type CgroupHierarchy,
  compileCreatePlan,
  compileExecPlan,
  type HostView,
  type InitNamespaces,
  type PlanContext,
  processRlimits,
} from '../../src/lib/plan';
import { normalizeSeccomp } from '../../src/lib/seccomp';
import { decodePlan, encodePlan, type FieldValue, Op, type PlanOp } from '../../src/lib/plan-format';
import { defaultSpec } from '../../src/lib/spec-default';
import { baseConfig } from '../fixtures';
import { PROJECT_ROOT } from '../../src/lib/native';
import { Rng } from '../rng';

type Json = any;

const SEED = Number(process.env.TSRUN_FUZZ_SEED ?? 20240607) >>> 0;
const CASES = Number(process.env.TSRUN_FUZZ_CASES ?? 5000);
const ONLY = process.env.TSRUN_FUZZ_CASE === undefined ? undefined : Number(process.env.TSRUN_FUZZ_CASE);
/** Distinct failures reported in full; the rest are counted. */
const MAX_REPORTED = Number(process.env.TSRUN_FUZZ_REPORT ?? 25);

// ---------------------------------------------------------------- seeds

/** One independent stream per case, so any case can be replayed alone. */
function caseSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------- values

/**
 * Numbers JSON can carry but JS cannot write: they are put in the tree as a
 * marker string and spliced into the JSON text verbatim.
 */
const RAW = (literal: string): string => `\u0000RAW:${literal}\u0000`;
const RAW_PATTERN = /"\\u0000RAW:([^"\\]*)\\u0000"/g;

const NUMBERS: Json[] = [
  0,
  1,
  -1,
  2,
  3,
  5,
  7,
  10,
  18,
  255,
  256,
  438,
  0o7777,
  0o10000,
  1000,
  -1000,
  1001,
  65535,
  65536,
  65537,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  -(2 ** 31) - 1,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 63,
  2 ** 64,
  -(2 ** 63),
  0.5,
  1.5,
  -1.5,
  1e-7,
  1e21,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  RAW('1e400'),
  RAW('-1e400'),
  RAW('18446744073709551615'),
  RAW('-0'),
  RAW('1e-400'),
  RAW('1.0'),
  RAW('4294967296.0'),
];

const LONG = 'x'.repeat(70_000);
const STRINGS: Json[] = [
  '',
  ' ',
  'a',
  '/',
  '//',
  '/.',
  '/..',
  '..',
  '.',
  'rel/path',
  '/a/../../b',
  '../../etc/passwd',
  '/proc/self/fd/1',
  '/../../../../../../../../tmp/tsrun-fuzz-escape',
  'NaN',
  'Infinity',
  '-1',
  '0x10',
  '1e3',
  '  42  ',
  '07',
  'a\u0000b',
  '\u0000',
  '/dev/\u0000null',
  'line1\nline2',
  'tab\there',
  '\r',
  'ünïcødé',
  '日本語',
  '🎉',
  '\ud800',
  'a\udfffb',
  'a'.repeat(300),
  `/${'y'.repeat(5000)}`,
  LONG,
  'a=b',
  '=',
  '=x',
  'A=b\u0000c',
  'HOME=/root',
  'PATH=/bin',
  'CAP_SYS_ADMIN',
  'cap_sys_admin',
  'RLIMIT_NOFILE',
  '__proto__',
  'constructor',
  'toString',
  '%s%n%x',
  "'; rm -rf /",
  'rw',
  'ro',
  'bind',
  'rbind',
  'idmap',
  'ridmap',
  'tmpcopyup',
  'tmpfs',
  'cgroup',
  'cgroup2',
  'sysfs',
  'proc',
  'none',
  'c',
  'b',
  'p',
  'u',
  'a',
  'rwm',
  'm',
  'x',
  '0-3,7',
  '1-',
  '2MB',
  '1GB',
  'max',
  'MB:0=50',
  'L3:0=f',
];

const VALUES: Json[] = [
  null,
  true,
  false,
  [],
  [null],
  [1, 2],
  ['a'],
  [[]],
  {},
  { a: 1 },
  { '': '' },
  [[[[{}]]]],
  { type: 'bind' },
  ...NUMBERS,
  ...STRINGS,
];

const UNKNOWN_KEYS = [
  'unknown',
  'x-extra',
  '',
  ' ',
  'Process',
  'MOUNTS',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '🎉',
  'a\u0000b',
  'a.b',
];

// ---------------------------------------------------------------- section generators

const MOUNT_OPTIONS = [
  'bind',
  'rbind',
  'ro',
  'rw',
  'nosuid',
  'nodev',
  'noexec',
  'rro',
  'rrw',
  'rnoatime',
  'rstrictatime',
  'ratime',
  'rshared',
  'rprivate',
  'shared',
  'slave',
  'private',
  'unbindable',
  'idmap',
  'ridmap',
  'tmpcopyup',
  'mode=755',
  'size=1k',
  'sync',
  'lazytime',
  'nolazytime',
  'mand',
  'defaults',
  'remount',
  'strictatime',
  'relatime',
  'noatime',
  'nosymfollow',
  'a,b',
  'x=y=z',
  ...STRINGS,
];

function genNumber(rng: Rng, sane: Json[] = [0, 1, 5, 1000]): Json {
  return rng.chance(0.85) ? rng.pick(sane) : rng.pick(NUMBERS);
}
function genString(rng: Rng, sane: Json[]): Json {
  return rng.chance(0.85) ? rng.pick(sane) : rng.pick(STRINGS);
}
function genIdMappings(rng: Rng): Json[] {
  return Array.from({ length: 1 + rng.int(3) }, () => ({
    containerID: genNumber(rng, [0, 1000]),
    hostID: genNumber(rng, [100000, 1000, 0]),
    size: genNumber(rng, [1, 65536, 10]),
  }));
}
function genMount(rng: Rng): Json {
  const m: Json = {
    destination: genString(rng, ['/data', '/vol', 'rel', '/dev', '/sys/fs/cgroup', '/etc/hosts', '/', '/tmp']),
  };
  if (rng.chance(0.8))
    m.type = genString(rng, ['bind', 'tmpfs', 'proc', 'cgroup', 'cgroup2', 'sysfs', 'none', 'mqueue', 'devpts']);
  if (rng.chance(0.8))
    m.source = genString(rng, ['/srv/vol', 'rel', '', 'tmpfs', '/missing/x', '/etc/resolv.conf', '/sys']);
  if (rng.chance(0.8)) m.options = rng.some(MOUNT_OPTIONS, 5);
  if (rng.chance(0.25)) {
    m.uidMappings = genIdMappings(rng);
    if (rng.chance(0.9)) m.gidMappings = genIdMappings(rng);
  }
  return m;
}
function genNamespace(rng: Rng): Json {
  const ns: Json = { type: rng.chance(0.9) ? rng.pick(NAMESPACE_TYPES) : rng.pick(STRINGS) };
  if (rng.chance(0.25)) ns.path = genString(rng, ['/proc/1/ns/net', '/var/run/netns/x', '']);
  return ns;
}
function genDevice(rng: Rng): Json {
  const d: Json = {
    type: genString(rng, ['c', 'b', 'p', 'u']),
    path: genString(rng, [
      '/dev/fuse',
      '/dev/x/y',
      '/dev/null',
      '/dev/fd',
      '/dev/../etc/x',
      '/',
      '/dev/..',
      '/dev/',
      '/dev//sda/',
    ]),
  };
  for (const key of ['major', 'minor', 'fileMode', 'uid', 'gid'])
    if (rng.chance(0.7)) d[key] = genNumber(rng, [0, 1, 3, 10, 229, 438]);
  return d;
}
function genRlimit(rng: Rng): Json {
  return {
    type: rng.chance(0.9) ? rng.pick(RLIMIT_TYPES) : rng.pick(STRINGS),
    soft: genNumber(rng, [1024, 0, RAW('18446744073709551615')]),
    hard: genNumber(rng, [4096, 1024, RAW('18446744073709551615')]),
  };
}
function genHook(rng: Rng): Json {
  const h: Json = { path: genString(rng, ['/usr/bin/hook', '/bin/true', 'relative']) };
  if (rng.chance(0.5)) h.args = rng.some([...STRINGS.slice(0, 8), 'hook', '-x'], 3);
  if (rng.chance(0.4)) h.env = rng.some(['A=b', 'PATH=/bin', 'bad', '=x', 'A=\u0000'], 2);
  if (rng.chance(0.4)) h.timeout = genNumber(rng, [1, 5, 30]);
  return h;
}
function genCapabilities(rng: Rng): Json {
  const caps: Json = {};
  for (const set of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient']) {
    if (rng.chance(0.6))
      caps[set] = Array.from({ length: rng.int(4) }, () =>
        rng.chance(0.9) ? rng.pick(CAPABILITIES) : rng.pick(STRINGS),
      );
  }
  return caps;
}
function genDeviceRule(rng: Rng): Json {
  const d: Json = { allow: rng.chance(0.8) ? rng.chance(0.5) : rng.pick(VALUES) };
  if (rng.chance(0.8)) d.type = genString(rng, ['a', 'b', 'c']);
  if (rng.chance(0.6)) d.major = genNumber(rng, [1, 5, 136, -1]);
  if (rng.chance(0.6)) d.minor = genNumber(rng, [3, 0, -1]);
  if (rng.chance(0.8)) d.access = genString(rng, ['rwm', 'r', 'm', 'rw']);
  return d;
}
function genWeightDevice(rng: Rng): Json {
  return {
    major: genNumber(rng, [8, 253]),
    minor: genNumber(rng, [0, 1]),
    weight: genNumber(rng, [10, 500, 1000]),
    leafWeight: genNumber(rng, [10, 300]),
  };
}
function genThrottle(rng: Rng): Json {
  return { major: genNumber(rng, [8]), minor: genNumber(rng, [0]), rate: genNumber(rng, [1048576, 100]) };
}
function genResources(rng: Rng): Json {
  const r: Json = {};
  if (rng.chance(0.5)) {
    r.memory = {};
    for (const key of ['limit', 'reservation', 'swap', 'kernel', 'kernelTCP', 'swappiness'])
      if (rng.chance(0.4)) r.memory[key] = genNumber(rng, [536870912, -1, 0, 1073741824, 60]);
    for (const key of ['disableOOMKiller', 'useHierarchy', 'checkBeforeUpdate'])
      if (rng.chance(0.2)) r.memory[key] = rng.chance(0.8) ? rng.chance(0.5) : rng.pick(VALUES);
  }
  if (rng.chance(0.5)) {
    r.cpu = {};
    for (const key of ['shares', 'quota', 'burst', 'period', 'realtimeRuntime', 'realtimePeriod', 'idle'])
      if (rng.chance(0.35)) r.cpu[key] = genNumber(rng, [1024, 100000, 50000, -1, 0, 1]);
    for (const key of ['cpus', 'mems']) if (rng.chance(0.3)) r.cpu[key] = genString(rng, ['0-3', '0', '']);
  }
  if (rng.chance(0.3)) r.pids = { limit: genNumber(rng, [100, -1, 0]) };
  if (rng.chance(0.3)) {
    r.blockIO = {};
    if (rng.chance(0.5)) r.blockIO.weight = genNumber(rng, [10, 500, 1000]);
    if (rng.chance(0.3)) r.blockIO.leafWeight = genNumber(rng, [10, 500]);
    if (rng.chance(0.4)) r.blockIO.weightDevice = Array.from({ length: 1 + rng.int(2) }, () => genWeightDevice(rng));
    for (const key of [
      'throttleReadBpsDevice',
      'throttleWriteBpsDevice',
      'throttleReadIOPSDevice',
      'throttleWriteIOPSDevice',
    ])
      if (rng.chance(0.25)) r.blockIO[key] = Array.from({ length: 1 + rng.int(2) }, () => genThrottle(rng));
  }
  if (rng.chance(0.25))
    r.hugepageLimits = Array.from({ length: 1 + rng.int(2) }, () => ({
      pageSize: genString(rng, ['2MB', '1GB', '64KB']),
      limit: genNumber(rng, [1048576, 0]),
    }));
  if (rng.chance(0.2)) {
    r.network = {};
    if (rng.chance(0.6)) r.network.classID = genNumber(rng, [1048577, 0]);
    if (rng.chance(0.6))
      r.network.priorities = [{ name: genString(rng, ['eth0', 'lo']), priority: genNumber(rng, [1, 500]) }];
  }
  if (rng.chance(0.2))
    r.rdma = {
      [genString(rng, ['mlx5_1', 'mlx4_0'])]: {
        hcaHandles: genNumber(rng, [3, 1]),
        hcaObjects: genNumber(rng, [10000]),
      },
    };
  if (rng.chance(0.2))
    r.unified = {
      [genString(rng, ['memory.max', 'pids.max', 'cpu.weight', 'io.max', 'cgroup.freeze'])]: genString(rng, [
        '1',
        'max',
        '100',
      ]),
    };
  if (rng.chance(0.5)) r.devices = Array.from({ length: rng.int(4) }, () => genDeviceRule(rng));
  return r;
}
function genSeccomp(rng: Rng): Json {
  const s: Json = { defaultAction: genString(rng, ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO']) };
  if (rng.chance(0.3)) s.architectures = rng.some(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'bogus'], 2);
  if (rng.chance(0.5)) {
    s.syscalls = Array.from({ length: 1 + rng.int(3) }, () => {
      const rule: Json = {
        names: rng.some(['read', 'write', 'mount', 'no_such_call'], 2),
        action: genString(rng, [
          'SCMP_ACT_ALLOW',
          'SCMP_ACT_ERRNO',
          'SCMP_ACT_KILL_PROCESS',
          'SCMP_ACT_NOTIFY',
          'SCMP_ACT_TRACE',
          'SCMP_ACT_LOG',
        ]),
      };
      if (rng.chance(0.3)) rule.errnoRet = genNumber(rng, [1, 38, 70000]);
      if (rng.chance(0.5)) {
        rule.args = Array.from({ length: 1 + rng.int(3) }, () => ({
          index: genNumber(rng, [0, 1, 5, 6]),
          value: genNumber(rng, [0, 4, 2 ** 63]),
          ...(rng.chance(0.3) ? { valueTwo: genNumber(rng, [0, 4]) } : {}),
          op: genString(rng, ['SCMP_CMP_EQ', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE', 'SCMP_CMP_GT']),
        }));
      }
      return rule;
    });
  }
  if (rng.chance(0.2)) s.defaultErrnoRet = genNumber(rng, [1, 38]);
  if (rng.chance(0.2)) s.listenerPath = genString(rng, ['/run/seccomp.sock']);
  if (rng.chance(0.2)) s.listenerMetadata = genString(rng, ['meta']);
  if (rng.chance(0.2)) s.flags = rng.some(['SECCOMP_FILTER_FLAG_LOG', 'bogus'], 2);
  return s;
}
function genUser(rng: Rng): Json {
  const u: Json = { uid: genNumber(rng, [0, 1000]), gid: genNumber(rng, [0, 1000]) };
  if (rng.chance(0.4)) u.umask = genNumber(rng, [18, 0o77, 0]);
  if (rng.chance(0.4)) u.additionalGids = Array.from({ length: rng.int(4) }, () => genNumber(rng, [5, 10, 0]));
  return u;
}
function genScheduler(rng: Rng): Json {
  const s: Json = { policy: rng.chance(0.9) ? rng.pick(SCHED_POLICIES) : rng.pick(STRINGS) };
  for (const key of ['nice', 'priority', 'runtime', 'deadline', 'period'])
    if (rng.chance(0.3)) s[key] = genNumber(rng, [0, 10, -20, 19]);
  if (rng.chance(0.3)) s.flags = rng.some(['SCHED_FLAG_RESET_ON_FORK', 'SCHED_FLAG_RECLAIM', 'bogus'], 2);
  return s;
}

/** Make sure linux.namespaces has one of `type`, so settings that need it get past that check. */
function withNamespace(config: Json, type: string): void {
  if (!isContainer(config.linux)) config.linux = {};
  if (!Array.isArray(config.linux.namespaces)) config.linux.namespaces = [{ type: 'mount' }];
  if (!config.linux.namespaces.some((ns: Json) => ns?.type === type)) config.linux.namespaces.push({ type });
}

/** A section of the config: where it lives, and how to make a plausible entry or value for it. */
interface Section {
  path: string[];
  /** The section's own value when absent (or replaced). */
  make(rng: Rng, config: Json): Json;
  /** For arrays and maps: one more entry. */
  entry?(rng: Rng): Json;
  key?(rng: Rng): string;
}

const SECTIONS: Section[] = [
  { path: ['mounts'], make: (rng) => [genMount(rng)], entry: genMount },
  { path: ['linux', 'namespaces'], make: (rng) => [genNamespace(rng), { type: 'mount' }], entry: genNamespace },
  { path: ['linux', 'devices'], make: (rng) => [genDevice(rng)], entry: genDevice },
  {
    path: ['linux', 'uidMappings'],
    make: (rng, c) => (withNamespace(c, 'user'), (c.linux.gidMappings ??= genIdMappings(rng)), genIdMappings(rng)),
    entry: (rng) => genIdMappings(rng)[0],
  },
  {
    path: ['linux', 'gidMappings'],
    make: (rng, c) => (withNamespace(c, 'user'), (c.linux.uidMappings ??= genIdMappings(rng)), genIdMappings(rng)),
    entry: (rng) => genIdMappings(rng)[0],
  },
  { path: ['process', 'rlimits'], make: (rng) => [genRlimit(rng)], entry: genRlimit },
  { path: ['process', 'capabilities'], make: genCapabilities },
  { path: ['process', 'user'], make: genUser },
  { path: ['process', 'scheduler'], make: genScheduler },
  {
    path: ['process', 'ioPriority'],
    make: (rng) => ({ class: genString(rng, [...IOPRIO_CLASSES]), priority: genNumber(rng, [0, 4, 7]) }),
  },
  { path: ['process', 'consoleSize'], make: (rng) => ({ height: genNumber(rng, [24]), width: genNumber(rng, [80]) }) },
  {
    path: ['process', 'env'],
    make: (rng) => rng.some(['A=b', 'PATH=/bin', 'HOME=/x'], 3),
    entry: (rng) => genString(rng, ['A=b', 'HOME=/root', 'B=']),
  },
  {
    path: ['process', 'args'],
    make: (rng) => [genString(rng, ['sh', '/bin/sh', 'checker'])],
    entry: (rng) => genString(rng, ['-c', 'true']),
  },
  {
    path: ['process', 'execCPUAffinity'],
    make: (rng) => ({ initial: genString(rng, ['0', '0-3,7']), final: genString(rng, ['1']) }),
  },
  { path: ['process', 'oomScoreAdj'], make: (rng) => genNumber(rng, [100, -1000, 1000, -999]) },
  { path: ['process', 'terminal'], make: (rng) => (rng.chance(0.8) ? rng.chance(0.5) : rng.pick(VALUES)) },
  { path: ['process', 'cwd'], make: (rng) => genString(rng, ['/', '/tmp', 'rel']) },
  ...HOOK_NAMES.map((name): Section => ({ path: ['hooks', name], make: (rng) => [genHook(rng)], entry: genHook })),
  { path: ['linux', 'resources'], make: genResources },
  { path: ['linux', 'resources', 'devices'], make: (rng) => [genDeviceRule(rng)], entry: genDeviceRule },
  {
    path: ['linux', 'resources', 'hugepageLimits'],
    make: (rng) => genResources(rng).hugepageLimits ?? [],
    entry: (rng) => ({ pageSize: genString(rng, ['2MB']), limit: genNumber(rng, [1]) }),
  },
  {
    path: ['linux', 'resources', 'blockIO', 'weightDevice'],
    make: (rng) => [genWeightDevice(rng)],
    entry: genWeightDevice,
  },
  {
    path: ['linux', 'resources', 'blockIO', 'throttleReadBpsDevice'],
    make: (rng) => [genThrottle(rng)],
    entry: genThrottle,
  },
  { path: ['linux', 'seccomp'], make: genSeccomp },
  {
    path: ['linux', 'sysctl'],
    make: () => ({ 'net.ipv4.ip_forward': '1' }),
    entry: (rng) => genString(rng, ['1', '0']),
    key: (rng) => genString(rng, ['kernel.msgmax', 'net.core.somaxconn', 'fs.mqueue.queues_max']),
  },
  {
    path: ['linux', 'maskedPaths'],
    make: () => ['/proc/kcore'],
    entry: (rng) => genString(rng, ['/proc/keys', '/sys/firmware', '/proc/../etc', '/proc/acpi/', '/', '//proc//scsi']),
  },
  {
    path: ['linux', 'readonlyPaths'],
    make: () => ['/proc/sys'],
    entry: (rng) => genString(rng, ['/proc/bus', '/proc/fs', '/proc/sys/', '/', '/proc/./irq']),
  },
  {
    path: ['linux', 'timeOffsets'],
    make: (rng, c) => {
      withNamespace(c, 'time');
      const offset = (): Json => ({
        secs: genNumber(rng, [10, -10, 0, 1e21, 2 ** 63, -(2 ** 53)]),
        nanosecs: genNumber(rng, [0, 999999999, 5]),
      });
      return rng.chance(0.5) ? { monotonic: offset() } : { monotonic: offset(), boottime: offset() };
    },
  },
  { path: ['linux', 'rootfsPropagation'], make: (rng) => genString(rng, [...ROOTFS_PROPAGATIONS]) },
  {
    path: ['linux', 'cgroupsPath'],
    make: (rng) => genString(rng, ['/my/ctr', 'rel/ctr', 'system.slice:tsrun:c1', '/../..']),
  },
  {
    path: ['linux', 'personality'],
    make: (rng) => ({ domain: genString(rng, ['LINUX', 'LINUX32']), flags: rng.some(['x'], 1) }),
  },
  {
    path: ['linux', 'intelRdt'],
    make: (rng) => ({
      closID: genString(rng, ['c1']),
      memBwSchema: genString(rng, ['MB:0=50']),
      schemata: rng.some(['L3:0=f', 'a\nb'], 2),
    }),
  },
  {
    path: ['linux', 'memoryPolicy'],
    make: (rng) => ({
      mode: genString(rng, [...MPOL_MODES]),
      nodes: genString(rng, ['0-1']),
      flags: rng.some(['MPOL_F_STATIC_NODES', 'x'], 2),
    }),
  },
  {
    path: ['linux', 'netDevices'],
    make: (rng) => ({ [genString(rng, ['eth1'])]: { name: genString(rng, ['eth0']) } }),
  },
  {
    path: ['annotations'],
    make: () => ({ 'org.example': 'v' }),
    entry: (rng) => genString(rng, ['v']),
    key: (rng) => genString(rng, ['k']),
  },
  { path: ['hostname'], make: (rng) => genString(rng, ['box', '', 'a'.repeat(64)]) },
  { path: ['domainname'], make: (rng) => genString(rng, ['example.com', '']) },
  {
    path: ['root'],
    make: (rng) => ({ path: genString(rng, ['rootfs', '/bundles/b1/rootfs', '/']), readonly: rng.chance(0.5) }),
  },
  { path: ['ociVersion'], make: (rng) => genString(rng, ['1.0.2', '1.3.0', '2.0.0', '1.0.0-rc.1+dev', '1.0']) },
];

// ---------------------------------------------------------------- fixtures

/** A config that uses every section create knows, all valid together. */
function richConfig(): Json {
  const c: Json = baseConfig(['/bin/sh', '-c', 'true']);
  c.process.terminal = false;
  c.process.consoleSize = { height: 24, width: 80 };
  c.process.user = { uid: 1000, gid: 1000, umask: 0o22, additionalGids: [5, 10] };
  c.process.capabilities = {
    bounding: ['CAP_KILL', 'CAP_CHOWN'],
    effective: ['CAP_KILL'],
    permitted: ['CAP_KILL'],
    inheritable: [],
    ambient: [],
  };
  c.process.rlimits = [
    { type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 },
    { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
  ];
  c.process.noNewPrivileges = true;
  c.process.oomScoreAdj = -500;
  c.process.scheduler = { policy: 'SCHED_OTHER', nice: 5 };
  c.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 4 };
  c.process.execCPUAffinity = { initial: '0', final: '0-1' };
  c.domainname = 'example.com';
  c.root.readonly = true;
  c.mounts.push(
    { destination: '/data', type: 'bind', source: 'data', options: ['rbind', 'ro', 'rshared'] },
    { destination: 'etc/resolv.conf', source: '/etc/resolv.conf', options: ['bind', 'rro'] },
    {
      destination: '/vol',
      type: 'bind',
      source: '/srv/vol',
      options: ['rbind', 'ridmap'],
      uidMappings: [{ containerID: 0, hostID: 1000, size: 10 }],
      gidMappings: [{ containerID: 0, hostID: 2000, size: 10 }],
    },
    { destination: '/shared', type: 'bind', source: '/srv/shared', options: ['bind', 'idmap'] },
    { destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'mode=755', 'sync', 'lazytime'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid'] },
  );
  c.hooks = {
    prestart: [{ path: '/usr/bin/prestart', args: ['prestart', 'x'], env: ['A=b'], timeout: 5 }],
    createRuntime: [{ path: '/usr/bin/create-runtime' }],
    createContainer: [{ path: '/usr/bin/create-container', args: ['cc'], timeout: 10 }],
    startContainer: [{ path: '/bin/start-container', env: ['X=y'] }],
    poststart: [{ path: '/usr/bin/poststart' }],
    poststop: [{ path: '/usr/bin/poststop' }],
  };
  c.annotations = { 'org.example.key': 'value' };
  c.linux.namespaces.push({ type: 'user' }, { type: 'cgroup' }, { type: 'time' });
  c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux.timeOffsets = { monotonic: { secs: 100, nanosecs: 5 }, boottime: { secs: -3 } };
  c.linux.devices = [
    { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
    { path: '/dev/loop0', type: 'b', major: 7, minor: 0 },
    { path: '/dev/fifo', type: 'p' },
    { path: '/dev/null', type: 'c', major: 1, minor: 3 },
  ];
  c.linux.cgroupsPath = '/tsrun/fuzz';
  c.linux.resources = {
    memory: { limit: 536870912, reservation: 268435456, swap: 1073741824, disableOOMKiller: false },
    cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
    pids: { limit: 100 },
    blockIO: {
      weight: 500,
      weightDevice: [{ major: 8, minor: 0, weight: 300 }],
      throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
    },
    hugepageLimits: [{ pageSize: '2MB', limit: 1048576 }],
    rdma: { mlx5_1: { hcaHandles: 3, hcaObjects: 10000 } },
    unified: { 'memory.high': '1000000' },
    devices: [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
    ],
  };
  c.linux.rootfsPropagation = 'rslave';
  c.linux.maskedPaths = ['/proc/kcore', '/sys/firmware'];
  c.linux.readonlyPaths = ['/proc/sys', '/proc/bus'];
  c.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.msgmax': '8192' };
  c.linux.seccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }],
  };
  c.linux.personality = { domain: 'LINUX' };
  c.linux.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0', flags: ['MPOL_F_STATIC_NODES'] };
  return c;
}

/** A config joining namespaces by path instead of creating them. */
function joiningConfig(): Json {
  const c: Json = baseConfig();
  c.linux.namespaces = [
    { type: 'mount' },
    { type: 'pid', path: '/proc/1/ns/pid' },
    { type: 'network', path: '/var/run/netns/x' },
    { type: 'uts', path: '/proc/1/ns/uts' },
    { type: 'user', path: '/proc/1/ns/user' },
    { type: 'ipc' },
  ];
  c.mounts.push({ destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] });
  return c;
}

const FIXTURES: Array<{ name: string; config: Json }> = [
  {
    name: 'spec-fixtures/busybox/config.json',
    config: JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'spec-fixtures', 'busybox', 'config.json'), 'utf8')),
  },
  { name: 'defaultSpec()', config: defaultSpec({ rootless: false, cgroupNamespace: true }) },
  { name: 'defaultSpec({ rootless: true })', config: defaultSpec({ rootless: true, cgroupNamespace: true }) },
  { name: 'baseConfig()', config: baseConfig() },
  { name: 'richConfig()', config: richConfig() },
  { name: 'joiningConfig()', config: joiningConfig() },
];

// ---------------------------------------------------------------- the fake host

const BUNDLE = '/bundles/b1';
const CGROUP_LAYOUTS: CgroupHierarchy[][] = [
  [{ name: '', version: 2, options: '' }],
  [
    { name: 'cpu,cpuacct', version: 1, options: 'cpu,cpuacct' },
    { name: 'memory', version: 1, options: 'memory' },
    { name: 'systemd', version: 1, options: 'name=systemd' },
    { name: 'unified', version: 2, options: '' },
  ],
  [],
];

/** Every path exists (a directory, or a file when it looks like one) except those saying "missing". */
function fakeHost(rng: Rng): HostView {
  const cgroups = CGROUP_LAYOUTS[rng.chance(0.15) ? 2 : rng.int(2)];
  return {
    kindOf: (p) => (p.includes('missing') ? null : /\.conf$|\/file/.test(p) ? 'file' : 'dir'),
    cgroupHierarchies: () => cgroups,
  };
}

const CONTAINER_ID = 'fuzz-ctr';
const OWN_CGROUP = '/user.slice/tsrun.scope';

/** As create builds it: on a cgroup v2 host the init is cloned into the directory linux.cgroupsPath names. */
function planContext(rng: Rng, config: Config): PlanContext {
  const host = fakeHost(rng);
  const unified = host.cgroupHierarchies().length === 1;
  return {
    bundle: BUNDLE,
    noPivot: rng.chance(0.2),
    consoleSocket: rng.chance(0.6),
    cgroupTargets: {
      joins: [],
      cloneInto: unified
        ? path.join('/sys/fs/cgroup', cgroupRelativePath(config.linux?.cgroupsPath, CONTAINER_ID, OWN_CGROUP))
        : undefined,
    },
    sessionKeyring: rng.chance(0.8) ? CONTAINER_ID : undefined,
    host,
  };
}

// ---------------------------------------------------------------- mutations

interface Slot {
  parent: Json;
  key: string | number;
  path: string;
}

const isContainer = (v: unknown): v is Json => typeof v === 'object' && v !== null;

function slotsOf(root: Json, rootPath = ''): Slot[] {
  const out: Slot[] = [];
  const walk = (node: Json, at: string): void => {
    if (Array.isArray(node)) {
      node.forEach((v, i) => {
        out.push({ parent: node, key: i, path: `${at}[${i}]` });
        if (isContainer(v)) walk(v, `${at}[${i}]`);
      });
    } else if (isContainer(node)) {
      for (const k of Object.keys(node)) {
        const p = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? (at ? `${at}.${k}` : k) : `${at}[${JSON.stringify(k)}]`;
        out.push({ parent: node, key: k, path: p });
        if (isContainer(node[k])) walk(node[k], p);
      }
    }
  };
  walk(root, rootPath);
  return out;
}

/** A short, printable rendering of a value, for the mutation log. */
function preview(v: Json): string {
  if (typeof v === 'string') {
    const raw = /^\u0000RAW:(.*)\u0000$/.exec(v);
    if (raw) return raw[1];
    if (v.length > 60) return `${JSON.stringify(v.slice(0, 20))}…(${v.length} chars)`;
  }
  if (v === undefined) return 'undefined';
  const text = JSON.stringify(v);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

function setAt(slot: Slot, value: Json): void {
  slot.parent[slot.key] = value;
}

function removeAt(slot: Slot): void {
  if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
  else delete slot.parent[slot.key];
}

function tweakString(rng: Rng, s: string): string {
  switch (rng.int(8)) {
    case 0:
      return s.startsWith('/') ? s.slice(1) : `/${s}`;
    case 1:
      return `${s}/..`;
    case 2:
      return `${s}\u0000`;
    case 3:
      return `${s}\n${s}`;
    case 4:
      return s + s.repeat(rng.int(4));
    case 5:
      return s.toUpperCase();
    case 6:
      return `${s}🎉\ud800`;
    default:
      return s.slice(0, rng.int(s.length + 1));
  }
}

function tweakNumber(rng: Rng, n: number): Json {
  switch (rng.int(7)) {
    case 0:
      return n + 1;
    case 1:
      return n - 1;
    case 2:
      return -n - 1;
    case 3:
      return n * 2 ** 32;
    case 4:
      return n + 0.5;
    case 5:
      return String(n);
    default:
      return rng.pick(NUMBERS);
  }
}

/** Another type altogether for the same content. */
function swapType(rng: Rng, v: Json): Json {
  if (Array.isArray(v)) return rng.chance(0.5) ? Object.fromEntries(v.map((x, i) => [String(i), x])) : (v[0] ?? null);
  if (isContainer(v)) return rng.chance(0.5) ? Object.values(v) : JSON.stringify(v);
  if (typeof v === 'string') return rng.chance(0.5) ? [v] : { value: v };
  if (typeof v === 'number') return rng.chance(0.5) ? String(v) : [v];
  if (typeof v === 'boolean') return rng.pick([String(v), v ? 1 : 0, [v]]);
  return rng.pick(VALUES);
}

/** The container at `keys`, created with the section's maker when missing. */
function ensureSection(rng: Rng, config: Json, section: Section): Slot {
  let node = config;
  let at = '';
  for (const key of section.path.slice(0, -1)) {
    if (!isContainer(node[key]) || Array.isArray(node[key])) node[key] = {};
    node = node[key];
    at = at ? `${at}.${key}` : key;
  }
  const last = section.path[section.path.length - 1];
  if (node[last] === undefined) node[last] = section.make(rng, config);
  return { parent: node, key: last, path: at ? `${at}.${last}` : last };
}

function mutateOnce(rng: Rng, config: Json, log: string[]): void {
  // Half the time aim at a section (creating it if needed), else anywhere.
  let scope: Slot | undefined;
  if (rng.chance(0.55)) {
    const section = rng.pick(SECTIONS);
    scope = ensureSection(rng, config, section);
    const value = scope.parent[scope.key];
    const roll = rng.int(10);
    if (roll < 3) {
      // A fresh plausible value, or one more entry.
      if (Array.isArray(value) && section.entry) {
        const entry = section.entry(rng);
        value.splice(rng.int(value.length + 1), 0, entry);
        log.push(`insert into ${scope.path}: ${preview(entry)}`);
      } else if (isContainer(value) && section.entry && section.key) {
        const key = section.key(rng);
        value[key] = section.entry(rng);
        log.push(`set ${scope.path}[${JSON.stringify(key)}] = ${preview(value[key])}`);
      } else {
        setAt(scope, section.make(rng, config));
        log.push(`set ${scope.path} = ${preview(scope.parent[scope.key])}`);
      }
      return;
    }
    if (roll === 3 && Array.isArray(value) && value.length) {
      const copy = JSON.parse(JSON.stringify(value[rng.int(value.length)]));
      value.push(copy);
      log.push(`duplicate an entry of ${scope.path}: ${preview(copy)}`);
      return;
    }
    if (!isContainer(value)) {
      // A scalar section: replace it.
      const v = rng.pick(VALUES);
      setAt(scope, v);
      log.push(`set ${scope.path} = ${preview(v)}`);
      return;
    }
  }

  const slots = scope ? slotsOf(scope.parent[scope.key], scope.path) : slotsOf(config);
  if (slots.length === 0) {
    if (scope) {
      const v = rng.pick(VALUES);
      setAt(scope, v);
      log.push(`set ${scope.path} = ${preview(v)}`);
    }
    return;
  }
  const slot = rng.pick(slots);
  const old = slot.parent[slot.key];
  switch (rng.int(9)) {
    case 0:
      removeAt(slot);
      log.push(`delete ${slot.path}`);
      return;
    case 1: {
      const v = rng.pick(VALUES);
      setAt(slot, v);
      log.push(`set ${slot.path} = ${preview(v)}`);
      return;
    }
    case 2: {
      // Same type, odd value: gets past the type checks to the rules behind them.
      const v =
        typeof old === 'string'
          ? rng.pick(STRINGS)
          : typeof old === 'number'
            ? rng.pick(NUMBERS)
            : typeof old === 'boolean'
              ? !old
              : rng.pick(VALUES);
      setAt(slot, v);
      log.push(`set ${slot.path} = ${preview(v)}`);
      return;
    }
    case 3: {
      const v = swapType(rng, old);
      setAt(slot, v);
      log.push(`retype ${slot.path} = ${preview(v)}`);
      return;
    }
    case 4: {
      if (typeof old === 'string') setAt(slot, tweakString(rng, old));
      else if (typeof old === 'number') setAt(slot, tweakNumber(rng, old));
      else setAt(slot, rng.pick(STRINGS));
      log.push(`tweak ${slot.path} = ${preview(slot.parent[slot.key])}`);
      return;
    }
    case 5: {
      // Unknown field next to the slot (or in it, when it is an object).
      const target = isContainer(old) && !Array.isArray(old) ? old : Array.isArray(slot.parent) ? null : slot.parent;
      if (target) {
        const key = rng.pick(UNKNOWN_KEYS);
        const v = rng.pick(VALUES);
        // defineProperty: a "__proto__" key must become an own property, as JSON.parse makes it.
        Object.defineProperty(target, key, { value: v, enumerable: true, writable: true, configurable: true });
        log.push(`add unknown field ${JSON.stringify(key)} = ${preview(v)} near ${slot.path}`);
        return;
      }
      setAt(slot, rng.pick(VALUES));
      log.push(`set ${slot.path} = ${preview(slot.parent[slot.key])}`);
      return;
    }
    case 6: {
      if (Array.isArray(old)) {
        const doubled = [...old, ...JSON.parse(JSON.stringify(old))];
        setAt(slot, doubled);
        log.push(`double ${slot.path} (${doubled.length} entries)`);
      } else if (Array.isArray(slot.parent)) {
        slot.parent.push(JSON.parse(JSON.stringify(old ?? null)));
        log.push(`duplicate ${slot.path}`);
      } else {
        setAt(slot, [old, old]);
        log.push(`set ${slot.path} = [it, it]`);
      }
      return;
    }
    case 7: {
      const v = Array.isArray(old) ? [] : isContainer(old) ? {} : rng.pick(['', 0, false]);
      setAt(slot, v);
      log.push(`empty ${slot.path} = ${preview(v)}`);
      return;
    }
    default: {
      const v = rng.pick(NUMBERS);
      setAt(slot, v);
      log.push(`set ${slot.path} = ${preview(v)}`);
    }
  }
}

/** Whole-text damage, as a truncated or hand-edited file would have. */
function mutateText(rng: Rng, text: string, log: string[]): string {
  switch (rng.int(5)) {
    case 0: {
      const at = rng.int(text.length);
      log.push(`truncate the JSON text at ${at} of ${text.length}`);
      return text.slice(0, at);
    }
    case 1: {
      const top = rng.pick(['null', '[]', '"config"', '42', 'true', '{}', '', '\ufeff{}', '{"ociVersion":"1.0.0"}']);
      log.push(`replace the JSON text with ${JSON.stringify(top)}`);
      return top;
    }
    case 2: {
      const at = rng.int(text.length);
      const ch = rng.pick(['{', '}', '"', ',', '\\', '\u0000', 'ÿ', ']', '\n']);
      log.push(`insert ${JSON.stringify(ch)} at ${at}`);
      return text.slice(0, at) + ch + text.slice(at);
    }
    case 3: {
      // JSON.parse keeps the last of duplicate keys.
      const key = rng.pick(['ociVersion', 'root', 'process', 'linux', 'mounts']);
      const v = JSON.stringify(rng.pick(VALUES));
      log.push(`append a duplicate "${key}": ${v.slice(0, 60)}`);
      return text.replace(/\}\s*$/, `,"${key}":${v}}`);
    }
    default: {
      log.push('prepend a UTF-8 BOM');
      return `\ufeff${text}`;
    }
  }
}

// ---------------------------------------------------------------- judging outcomes

/** A JSON path as ConfigError names fields: process.args[0], linux.sysctl["net.ipv4.ip_forward"], config.json. */
const PATH_BODY = /(?:config\.json|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])*)/
  .source;
const MESSAGE_START = new RegExp(`^${PATH_BODY}: `);
const WHOLE_PATH = new RegExp(`^${PATH_BODY}$`);

/** Problems with an error a stage threw; empty when it is an acceptable user error. */
function judgeError(err: unknown): string[] {
  if (!(err instanceof ConfigError) && !(err instanceof TsrunError)) {
    const e = err as Error;
    const where = (e?.stack ?? '').split('\n').find((l) => l.includes('/src/lib/')) ?? '';
    return [
      `${e?.constructor?.name ?? typeof err} is not a ConfigError or TsrunError: ${String(e?.message ?? err).slice(0, 300)} ${where.trim()}`,
    ];
  }
  const problems: string[] = [];
  const message = err.message;
  if (/[\n\r]/.test(message)) problems.push('message spans several lines');
  if (!MESSAGE_START.test(message)) problems.push('message does not start with a field path');
  if (err instanceof ConfigError) {
    if (!message.startsWith(`${err.field}: `)) problems.push(`message does not start with its field "${err.field}"`);
    if (!WHOLE_PATH.test(err.field)) problems.push(`field "${err.field}" is not a JSON path`);
  }
  // Outside quoted user input (and the field path, whose keys are the user's), these words mean a value of the wrong type was printed.
  const unquoted = message.replace(MESSAGE_START, '').replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const leak = /\bundefined\b|\[object |\bNaN\b/.exec(unquoted);
  if (leak) problems.push(`message shows "${leak[0]}"`);
  return problems.map((p) => `${p}: ${message.slice(0, 300)}`);
}

/** An op's fields by name, whatever the op. */
const fieldsOf = (o: PlanOp): Record<string, FieldValue> => o.fields as Record<string, FieldValue>;

/** What decodePlan should give back for an op list: the encoder writes strings as UTF-8. */
function wireForm(ops: PlanOp[]): PlanOp[] {
  const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8'); // lone surrogates become U+FFFD
  const norm = (v: FieldValue): FieldValue =>
    typeof v === 'string'
      ? utf8(v)
      : Array.isArray(v)
        ? ((v as Array<string | number>).map((x) => (typeof x === 'string' ? utf8(x) : x)) as FieldValue)
        : v;
  return ops.map(
    (o) =>
      ({
        op: o.op,
        fields: Object.fromEntries(Object.entries(o.fields).map(([k, v]) => [k, norm(v)])),
      }) as PlanOp,
  );
}

/** The first difference between two decoded plans, or null. */
function planDiff(expected: PlanOp[], actual: PlanOp[]): string | null {
  if (expected.length !== actual.length) return `${expected.length} ops encoded, ${actual.length} decoded`;
  for (let i = 0; i < expected.length; i++) {
    const a = expected[i];
    const b = actual[i];
    if (a.op !== b.op) return `op ${i}: ${Op[a.op]} became ${Op[b.op] ?? b.op}`;
    const keys = new Set([...Object.keys(a.fields), ...Object.keys(b.fields)]);
    for (const k of keys) {
      const x = fieldsOf(a)[k];
      const y = fieldsOf(b)[k];
      const same =
        Buffer.isBuffer(x) && Buffer.isBuffer(y)
          ? x.equals(y)
          : Array.isArray(x) && Array.isArray(y)
            ? x.length === y.length && x.every((v, j) => v === y[j])
            : x === y;
      if (!same) return `op ${i} ${Op[a.op]}.${k}: ${preview(String(x))} became ${preview(String(y))}`;
    }
  }
  return null;
}

/** Things the helper takes on trust: paths under the rootfs are relative and clean, numbers are in range. */
function planSanity(ops: PlanOp[]): string[] {
  const problems: string[] = [];
  const relative = (op: PlanOp, field: string): void => {
    const p = fieldsOf(op)[field] as string;
    if (p === '' || p.startsWith('/') || p.split('/').some((part) => part === '..' || part === '.' || part === ''))
      problems.push(`${Op[op.op]}.${field} is not a clean path under the rootfs: ${preview(p)}`);
  };
  for (const op of ops) {
    switch (op.op) {
      case Op.MOUNT:
        relative(op, 'dest');
        break;
      case Op.MKNOD:
        relative(op, 'path');
        break;
      case Op.SYMLINK:
        relative(op, 'path');
        break;
      case Op.MKDIR:
        relative(op, 'path');
        break;
      case Op.READONLY_PATH:
      case Op.MASK_PATH: {
        const p = op.fields.path as string;
        if (!p.startsWith('/') || path.posix.normalize(p) !== p || (p !== '/' && p.endsWith('/')))
          problems.push(`${Op[op.op]}.path is not a clean absolute path: ${preview(p)}`);
        break;
      }
      case Op.TIMENS_OFFSETS:
        for (const line of (op.fields.content as string).split('\n').filter(Boolean))
          if (!/^(monotonic|boottime) -?\d+ \d+$/.test(line))
            problems.push(`TIMENS_OFFSETS line the kernel cannot parse: ${preview(line)}`);
        break;
      case Op.HOOK:
        if ((op.fields.timeout as number) * 1000 > 2 ** 31 - 1)
          problems.push(`HOOK.timeout ${op.fields.timeout}s overflows poll(2)'s milliseconds`);
        break;
      case Op.OOM_SCORE_ADJ: {
        const v = (op.fields.value as number) | 0;
        if (v < -1000 || v > 1000) problems.push(`OOM_SCORE_ADJ.value ${v} out of range`);
        break;
      }
    }
  }
  return problems;
}

function checkPlan(ops: PlanOp[]): string[] {
  const insane = planSanity(ops);
  if (insane.length) return insane;
  let buf: Buffer;
  try {
    buf = encodePlan(ops);
  } catch (err) {
    return [
      `encodePlan threw (the compiler made an op the wire format cannot carry): ${(err as Error).message.slice(0, 300)}`,
    ];
  }
  let decoded: PlanOp[];
  try {
    decoded = decodePlan(buf);
  } catch (err) {
    return [`decodePlan threw on encodePlan's output: ${(err as Error).message}`];
  }
  const diff = planDiff(wireForm(ops), decoded);
  return diff ? [`plan does not round-trip: ${diff}`] : [];
}

// ---------------------------------------------------------------- the cgroup scratch area

/**
 * linux.resources go through the real drivers, with every hierarchy a
 * plain directory under a scratch dir.  Writes are watched: one landing
 * outside the container's own cgroup directories is a finding (and is not
 * carried out), as is a knob written with a value that is plainly the
 * wrong type.
 */
class CgroupScratch {
  // On tmpfs when there is one: thousands of small writes and removals.
  readonly root = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'tsrun-fuzz-cgroup-'));
  private readonly v1Controllers = [
    'cpu',
    'cpuacct',
    'cpuset',
    'memory',
    'devices',
    'freezer',
    'blkio',
    'pids',
    'net_cls',
    'net_prio',
    'hugetlb',
    'rdma',
  ];
  private readonly hierarchies: Hierarchy[];
  private readonly dirs: string[];
  writes: Array<{ file: string; value: string }> = [];

  constructor() {
    this.hierarchies = [
      ...this.v1Controllers.map((c): Hierarchy => ({
        mountPoint: path.join(this.root, 'v1', c),
        root: '/',
        version: 1,
        controllers: [c],
      })),
      {
        mountPoint: path.join(this.root, 'v1', 'unified'),
        root: '/',
        version: 2,
        controllers: ['memory', 'pids', 'hugetlb', 'rdma', 'io', 'cpu', 'cpuset', 'misc'],
      },
    ];
    this.dirs = [...this.hierarchies.map((h) => path.join(h.mountPoint, 'ctr')), path.join(this.root, 'v2', 'ctr')];
  }

  /** Empty cgroup directories for one case: what the last case wrote is removed. */
  reset(): void {
    for (const w of this.writes) {
      try {
        fs.rmSync(w.file, { force: true });
      } catch {
        // not a file: the write failed, nothing to remove
      }
    }
    for (const d of this.dirs) fs.mkdirSync(d, { recursive: true });
    this.writes = [];
  }

  v1(): V1Writer {
    const dirs = this.hierarchies.map((h) => ({ ...h, dir: path.join(h.mountPoint, 'ctr') }));
    return new V1Writer(dirs, this.files(), () => {}, DEFAULT_DEVICE_RULES);
  }

  v2(): V2Writer {
    // Device rules go to the kernel through the addon: here they are compiled and dropped.
    return new V2Writer(
      path.join(this.root, 'v2', 'ctr'),
      this.files(),
      () => {},
      () => {},
      DEFAULT_DEVICE_RULES,
    );
  }

  /** The host's files, with every write recorded and confined to the scratch dir. */
  files(): CgroupFiles {
    const root = this.root;
    const writes = this.writes;
    return {
      ...hostFiles,
      write(file: string, value: string): void {
        const target = path.resolve(file);
        if (!target.startsWith(root + path.sep))
          throw new Error(`FUZZ-ESCAPE: a cgroup write to ${target}, outside the cgroup directory`);
        writes.push({ file: target, value });
        hostFiles.write(file, value);
      },
    };
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- stages

interface Outcome {
  stage: string;
  problems: string[];
  ok: boolean;
  /** The message of the error the stage ended with. */
  error?: string;
}

function stage(name: string, fn: () => string[]): Outcome {
  try {
    const problems = fn();
    return { stage: name, problems, ok: true };
  } catch (err) {
    const msg = (err as Error)?.message ?? '';
    if (msg.startsWith('FUZZ-ESCAPE')) return { stage: name, problems: [msg], ok: false };
    return { stage: name, problems: judgeError(err), ok: false, error: String(msg) };
  }
}

/** What `create` does: parse, compile against the host, encode; decode as --debug and tests do. */
function createStage(text: string, rng: Rng): { outcome: Outcome; config?: Config } {
  let config: Config | undefined;
  const outcome = stage('create', () => {
    config = parseConfig(text);
    // As create: the seccomp section is validated into numbers (the libseccomp
    // compile itself is the addon's; a stand-in program takes its place here).
    const filter = config.linux?.seccomp ? normalizeSeccomp(config.linux.seccomp) : undefined;
    const seccomp = filter && { program: Buffer.alloc(8), flags: filter.flags, notify: filter.notify };
    if (config.process) processRlimits(config.process);
    const { ops } = compileCreatePlan(config, { ...planContext(rng, config), seccomp });
    return checkPlan(ops);
  });
  return { outcome, config };
}

/** What `exec --process` does with the process object. */
function execStage(processJson: Json, rng: Rng): Outcome {
  return stage('exec', () => {
    const proc: Process = checkProcess(processJson, 'process');
    const differing: InitNamespaces['differing'] = {};
    for (const type of NAMESPACE_TYPES) if (rng.chance(0.4)) differing[type] = `/proc/4242/ns/${type}`;
    return checkPlan(
      compileExecPlan(
        proc,
        { differing },
        { cgroupTargets: { joins: [], cloneInto: rng.pick([undefined, '/sys/fs/cgroup/tsrun/c1']) } },
      ),
    );
  });
}

/** What create does with linux.cgroupsPath and linux.resources (both drivers). */
function resourcesStage(config: Config, scratch: CgroupScratch): Outcome[] {
  const out: Outcome[] = [];
  out.push(
    stage('cgroupsPath', () => {
      cgroupRelativePath(config.linux?.cgroupsPath, CONTAINER_ID, OWN_CGROUP);
      return [];
    }),
  );
  const resources = config.linux?.resources as Json;
  if (!resources) return out;
  const written = (): string[] =>
    scratch.writes
      .filter((w) => /\bundefined\b|\[object /.test(w.value) || /\bundefined\b|\[object /.test(path.basename(w.file)))
      .map((w) => `wrote ${JSON.stringify(w.value.slice(0, 80))} to ${path.relative(scratch.root, w.file)}`);
  for (const driver of ['v1', 'v2'] as const) {
    scratch.reset();
    out.push(
      stage(`resources(${driver})`, () =>
        (() => {
          scratch[driver]().set(resources);
          return written();
        })(),
      ),
    );
  }
  return out;
}

// ---------------------------------------------------------------- the run

interface Case {
  index: number;
  fixture: string;
  log: string[];
  text: string;
}

function buildCase(index: number): { c: Case; rng: Rng; tree: Json } {
  const rng = new Rng(caseSeed(SEED, index));
  const fixture = rng.pick(FIXTURES);
  const tree = JSON.parse(JSON.stringify(fixture.config));
  const log: string[] = [];
  const rounds = rng.pick([1, 1, 1, 2, 2, 3, 4]);
  for (let i = 0; i < rounds; i++) mutateOnce(rng, tree, log);
  let text = JSON.stringify(tree).replace(RAW_PATTERN, '$1');
  if (rng.chance(0.04)) text = mutateText(rng, text, log);
  return { c: { index, fixture: fixture.name, log, text }, rng, tree };
}

/** Control characters, line separators and surrogates escaped: they come from fuzzed input and would garble the TAP stream. */
const ascii = (s: string): string =>
  s.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ud800-\udfff]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );

/** The config, readable: huge strings shortened. */
function printable(text: string): string {
  const short = text.replace(/"((?:[^"\\]|\\.){200,})"/g, (_m, s: string) => `"${s.slice(0, 40)}…(${s.length} chars)"`);
  return short.length > 4000 ? `${short.slice(0, 4000)}…` : short;
}

t.test(`config fuzzer: ${ONLY === undefined ? CASES : 1} seeded cases (seed ${SEED})`, async (t) => {
  const scratch = new CgroupScratch();
  t.teardown(() => scratch.cleanup());
  const started = Date.now();
  const stats = { cases: 0, plans: 0, configErrors: 0, execPlans: 0, resources: 0 };
  const rejections = new Map<string, number>();
  const failures = new Map<string, { count: number; first: Case; stage: string; problem: string }>();
  const indices = ONLY === undefined ? Array.from({ length: CASES }, (_, i) => i) : [ONLY];

  for (const index of indices) {
    const { c, rng, tree } = buildCase(index);
    stats.cases++;
    const outcomes: Outcome[] = [];
    const created = createStage(c.text, rng);
    outcomes.push(created.outcome);
    if (created.outcome.ok && created.outcome.problems.length === 0) stats.plans++;
    else if (!created.outcome.ok && created.outcome.problems.length === 0) {
      stats.configErrors++;
      const reason = created.outcome
        .error!.replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
        .replace(/\[\d+\]/g, '[N]')
        .slice(0, 90);
      rejections.set(reason, (rejections.get(reason) ?? 0) + 1);
    }

    if (isContainer(tree.process) && !c.log.some((l) => l.includes('JSON text'))) {
      const proc = JSON.parse(JSON.stringify(tree.process).replace(RAW_PATTERN, '$1'));
      const exec = execStage(proc, rng);
      if (exec.ok && exec.problems.length === 0) stats.execPlans++;
      outcomes.push(exec);
    }
    if (created.config) {
      const res = resourcesStage(created.config, scratch);
      if (created.config.linux?.resources) stats.resources++;
      outcomes.push(...res);
    }

    for (const o of outcomes) {
      for (const problem of o.problems) {
        // One report per kind of problem: numbers and quoted input vary between cases.
        const signature = ascii(
          `${o.stage}: ${problem
            .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
            .replace(/\d+/g, 'N')
            .slice(0, 160)}`,
        );
        const seen = failures.get(signature);
        if (seen) seen.count++;
        else failures.set(signature, { count: 1, first: c, stage: o.stage, problem });
      }
    }
    if (ONLY !== undefined) {
      t.comment(
        ascii(`case ${index} from ${c.fixture}:`) +
          `\n  ${c.log.map(ascii).join('\n  ')}\nconfig.json: ${ascii(printable(c.text))}`,
      );
      for (const o of outcomes)
        t.comment(ascii(`${o.stage}: ${o.ok ? 'plan' : `error (${o.error})`} ${o.problems.join('; ')}`));
    }
  }

  const seconds = (Date.now() - started) / 1000;
  t.comment(
    `${stats.cases} cases in ${seconds.toFixed(1)}s: ${stats.plans} valid plans, ${stats.configErrors} clean config errors, ` +
      `${stats.execPlans} exec plans, ${stats.resources} with linux.resources`,
  );
  if (process.env.TSRUN_FUZZ_STATS) {
    const top = [...rejections].sort((a, b) => b[1] - a[1]).slice(0, 40);
    t.comment(`most common rejections:\n${top.map(([r, n]) => `${String(n).padStart(5)}  ${ascii(r)}`).join('\n')}`);
  }
  let reported = 0;
  for (const [signature, f] of failures) {
    if (reported++ >= MAX_REPORTED) break;
    t.fail(`${signature} (${f.count} cases)`, {
      diagnostic: true,
      problem: ascii(f.problem),
      stage: f.stage,
      case: f.first.index,
      fixture: f.first.fixture,
      mutations: f.first.log.map(ascii),
      config: ascii(printable(f.first.text)),
      replay: `TSRUN_FUZZ_SEED=${SEED} TSRUN_FUZZ_CASE=${f.first.index} npx tap dist/test/unit/fuzz-config.test.js`,
    });
  }
  if (failures.size > MAX_REPORTED) t.fail(`${failures.size - MAX_REPORTED} more kinds of failure not shown`);
  t.equal(failures.size, 0, 'every case ends in a valid plan or a one-line error naming a field');
  // Guard against a fuzzer that only ever produces parse errors.
  if (ONLY === undefined && CASES >= 1000) {
    t.ok(stats.plans > CASES * 0.15, `a fair share of cases compile to a plan (${stats.plans})`);
    t.ok(stats.configErrors > CASES * 0.15, `a fair share of cases are rejected (${stats.configErrors})`);
  }
});

/**
 * What this fuzzer found, one readable case each: before the fixes these
 * threw TypeErrors or plain Errors, wrote garbage (or outside the cgroup
 * directory), or compiled plans the helper would misread.
 */
t.test('findings of the fuzzer stay fixed', async (t) => {
  const scratch = new CgroupScratch();
  t.teardown(() => scratch.cleanup());
  const host: HostView = {
    kindOf: (p) => (p.includes('missing') ? null : 'dir'),
    cgroupHierarchies: () => CGROUP_LAYOUTS[0],
  };
  const ctx: PlanContext = { bundle: BUNDLE, noPivot: false, consoleSocket: true, host };

  /** The create road, plus the cgroup drivers: the error it ends with, or '' when it compiles. */
  const run = (mutate: (c: Json) => void): string => {
    const c = baseConfig();
    mutate(c);
    try {
      const config = parseConfig(JSON.stringify(c));
      const problems = checkPlan(compileCreatePlan(config, ctx).ops);
      for (const o of resourcesStage(config, scratch)) {
        problems.push(...o.problems.map((p) => `${o.stage}: ${p}`));
        if (!o.ok && !o.problems.length && o.stage === 'resources(v1)') problems.push(o.error!);
      }
      return problems.join('; ');
    } catch (err) {
      const problems = judgeError(err);
      return problems.length ? `NOT CLEAN: ${problems.join('; ')}` : (err as Error).message;
    }
  };
  const rejects = (what: string, mutate: (c: Json) => void, message: RegExp): void => {
    t.match(run(mutate), message, what);
  };

  // NUL bytes used to reach encodePlan ("string contains a NUL byte", a plain Error) or Node's spawn.
  rejects('NUL in hostname', (c) => (c.hostname = 'a\u0000b'), /^hostname: must not contain a NUL byte$/);
  rejects('NUL in process.cwd', (c) => (c.process.cwd = '/\u0000'), /^process\.cwd: must not contain a NUL byte$/);
  rejects(
    'NUL in process.args',
    (c) => (c.process.args = ['sh', 'a\u0000b']),
    /^process\.args\[1\]: must not contain a NUL byte$/,
  );
  rejects(
    'NUL in a mount source',
    (c) => (c.mounts[0].source = 'pr\u0000oc'),
    /^mounts\[0\]\.source: must not contain/,
  );
  rejects(
    'NUL in a mount option',
    (c) => (c.mounts[1].options = ['mode=7\u000055']),
    /^mounts\[1\]\.options\[0\]: must not contain/,
  );
  rejects(
    'NUL in a sysctl name',
    (c) => (c.linux.sysctl = { 'net.\u0000x': '1' }),
    /^linux\.sysctl\["net\.\\u0000x"\]: must be a sysctl name/,
  );
  rejects(
    'NUL in a hook argument',
    (c) => (c.hooks = { prestart: [{ path: '/bin/true', args: ['true', '\u0000'] }] }),
    /^hooks\.prestart\[0\]\.args\[1\]: must not contain/,
  );
  rejects('NUL in cgroupsPath', (c) => (c.linux.cgroupsPath = '/a\u0000b'), /^linux\.cgroupsPath: must not contain/);
  // Numbers the wire format cannot carry: a plain Error from encodePlan, or a value that decodes differently.
  rejects(
    'hook timeout of 2^32 s',
    (c) => (c.hooks = { createContainer: [{ path: '/bin/true', timeout: 2 ** 32 }] }),
    /^hooks\.createContainer\[0\]\.timeout: must be at most 2147483 seconds$/,
  );
  rejects(
    'device major of 2^32',
    (c) => (c.linux.devices = [{ path: '/dev/x', type: 'c', major: 2 ** 32, minor: 1 }]),
    /^linux\.devices\[0\]\.major: must be between 0 and 4294967295$/,
  );
  rejects(
    'negative device minor',
    (c) => (c.linux.devices = [{ path: '/dev/x', type: 'b', major: 8, minor: -1 }]),
    /^linux\.devices\[0\]\.minor: must be a non-negative integer$/,
  );
  rejects(
    'time offset of 1e21 s',
    (c) => {
      c.linux.namespaces.push({ type: 'time' });
      c.linux.timeOffsets = { monotonic: { secs: 1e21 } };
    },
    /^linux\.timeOffsets\.monotonic\.secs: must be between/,
  );
  // Paths the helper would misread.
  rejects(
    'a device at the rootfs itself',
    (c) => (c.linux.devices = [{ path: '/dev/..', type: 'c', major: 1, minor: 3 }]),
    /^linux\.devices\[0\]\.path: cannot be the container's root$/,
  );
  t.equal(
    run((c) => (c.linux.readonlyPaths = ['/proc/sys/', '//proc//bus'])),
    '',
    'read-only paths lose their trailing slash',
  );
  // Messages that spanned lines.
  t.equal(
    run((c) => (c.process.capabilities = { bounding: ['CAP_\rX'] })),
    '',
    'an unknown capability, even with a CR, is a warning (quoted, one line), not an error',
  );
  rejects(
    'a cgroupsPath with a newline',
    (c) => (c.linux.cgroupsPath = 'a:b\n:c'),
    /^$|linux\.cgroupsPath: "a:b\\n:c"/,
  );
  // linux.resources of the wrong types: TypeErrors in the drivers, or "undefined"/"[object Object]" written to knobs.
  rejects(
    'resources.devices a string',
    (c) => (c.linux.resources = { devices: 'CAP_SYS_ADMIN' }),
    /^linux\.resources\.devices: must be an array, not a string$/,
  );
  rejects(
    'resources.hugepageLimits false',
    (c) => (c.linux.resources = { hugepageLimits: false }),
    /^linux\.resources\.hugepageLimits: must be an array, not a boolean$/,
  );
  rejects(
    'a hugepage limit without pageSize',
    (c) => (c.linux.resources = { hugepageLimits: [{ limit: 1 }] }),
    /^linux\.resources\.hugepageLimits\[0\]\.pageSize: is required$/,
  );
  rejects(
    'a pageSize that climbs out of the cgroup',
    (c) => (c.linux.resources = { hugepageLimits: [{ pageSize: '/../../../../../tmp/x', limit: 1 }] }),
    /^linux\.resources\.hugepageLimits\[0\]\.pageSize: must be a size such as "2MB"/,
  );
  rejects(
    'a throttle entry of the wrong type',
    (c) => (c.linux.resources = { blockIO: { throttleReadBpsDevice: [0] } }),
    /^linux\.resources\.blockIO\.throttleReadBpsDevice\[0\]: must be an object, not a number$/,
  );
  rejects(
    'a weight device with an object for major',
    (c) => (c.linux.resources = { blockIO: { weightDevice: [{ major: {}, minor: 0, weight: 10 }] } }),
    /^linux\.resources\.blockIO\.weightDevice\[0\]\.major: must be an integer$/,
  );
  rejects(
    'a device rule with an array for minor',
    (c) => (c.linux.resources = { devices: [{ allow: true, type: 'c', major: 1, minor: [1, 1], access: 'rwm' }] }),
    /^linux\.resources\.devices\[0\]\.minor: must be an integer$/,
  );
  rejects(
    'a device rule type with a newline',
    (c) => (c.linux.resources = { devices: [{ allow: true, type: 'c\nb' }] }),
    /^linux\.resources\.devices\[0\]\.type: must be a, b or c, not "c\\nb"$/,
  );
  rejects(
    'a unified value that is an object',
    (c) => (c.linux.resources = { unified: { 'memory.high': { value: '1' } } }),
    /^linux\.resources\.unified\["memory\.high"\]: must be a string$/,
  );
  // unified is for a cgroup2-only host: the v1 driver refuses it, as runc does.
  t.equal(
    run((c) => (c.linux.resources = { ...richConfig().linux.resources, unified: undefined })),
    '',
    'every resources field of a valid config still passes',
  );
  t.match(
    run((c) => (c.linux.resources = { unified: { 'memory.high': '1000000' } })),
    /linux\.resources\.unified: cannot be used on a cgroup v1 host/,
    'unified on the v1 driver: refused',
  );
});
