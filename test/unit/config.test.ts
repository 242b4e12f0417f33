import t from 'tap';
import { ConfigError, parseConfig } from '../../src/lib/config';

type Json = any;

function validConfig(): Json {
  return {
    ociVersion: '1.3.0',
    root: { path: 'rootfs', readonly: true },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0, umask: 18, additionalGids: [5, 6] },
      args: ['sh', '-c', 'true'],
      env: ['PATH=/usr/bin:/bin', 'EMPTY=', 'WITH_EQUALS=a=b'],
      cwd: '/',
      capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }],
      noNewPrivileges: true,
      oomScoreAdj: 100,
      ioPriority: { class: 'IOPRIO_CLASS_IDLE', priority: 4 },
      scheduler: { policy: 'SCHED_FIFO', priority: 10, flags: ['SCHED_FLAG_RESET_ON_FORK'] },
      execCPUAffinity: { initial: '7', final: '0-3,7' },
    },
    hostname: 'box',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      { destination: '/data', type: 'none', source: '/volumes/data', options: ['rbind', 'rw', 'rprivate'] },
    ],
    hooks: {
      prestart: [{ path: '/usr/bin/fix-mounts', args: ['fix-mounts', 'a'], env: ['key1=value1'] }],
      poststart: [{ path: '/usr/bin/notify-start', timeout: 5 }],
    },
    annotations: { 'com.example.key': 'value', 'com.example.empty': '' },
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/x' }, { type: 'mount' }, { type: 'uts' }],
      devices: [
        { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0 },
        { path: '/dev/fifo', type: 'p' },
      ],
      cgroupsPath: '/my/container',
      resources: { memory: { limit: 536870912 } },
      rootfsPropagation: 'slave',
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
      sysctl: { 'net.ipv4.ip_forward': '1' },
      seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [] },
      personality: { domain: 'LINUX' },
    },
  };
}

function parse(config: Json) {
  return parseConfig(JSON.stringify(config));
}

/** Assert that `mutate` makes the config invalid with an error naming `field`. */
function rejects(t: tap.Test, description: string, mutate: (config: Json) => void, field: string, reason: RegExp) {
  const config = validConfig();
  mutate(config);
  let caught: unknown;
  try {
    parse(config);
  } catch (error) {
    caught = error;
  }
  t.ok(caught instanceof ConfigError, `${description}: throws ConfigError`);
  const error = caught as ConfigError;
  t.equal(error?.field, field, `${description}: field`);
  t.ok(error?.message.startsWith(`${field}: `), `${description}: message names ${field} (got "${error?.message}")`);
  t.match(error?.message, reason, `${description}: reason`);
  t.notMatch(error?.message ?? '', /\n/, `${description}: one line`);
}

t.test('a valid config parses', async (t) => {
  const config = parse(validConfig());
  t.equal(config.ociVersion, '1.3.0');
  t.same(config.process!.args, ['sh', '-c', 'true']);
  t.equal(config.linux!.namespaces!.length, 4);
});

t.test('the full example from config.md parses', async (t) => {
  const example = validConfig();
  example.linux.namespaces.push({ type: 'user' }, { type: 'cgroup' }, { type: 'time' }, { type: 'ipc' });
  example.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 32000 }];
  example.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 32000 }];
  example.linux.timeOffsets = { monotonic: { secs: 172800, nanosecs: 0 }, boottime: { secs: -5, nanosecs: 1 } };
  example.linux.intelRdt = { closID: 'g', schemata: ['L3:0=7f0;1=1f', 'MB:0=20;1=70'], memBwSchema: 'MB:0=20' };
  example.linux.memoryPolicy = { mode: 'MPOL_INTERLEAVE', nodes: '2-3', flags: ['MPOL_F_STATIC_NODES'] };
  example.linux.netDevices = { eth0: { name: 'container_eth0' } };
  example.domainname = 'example.test';
  example.mounts.push({
    destination: '/idmapped',
    source: '/src',
    options: ['rbind', 'ridmap'],
    uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
    gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
  });
  t.doesNotThrow(() => parse(example));
});

t.test('unknown properties are ignored and kept', async (t) => {
  const config = validConfig();
  config.vendorExtension = { anything: [1, 2] };
  config.linux.somethingNew = 42;
  config.process.futureField = 'x';
  const parsed = parse(config);
  t.same(parsed.vendorExtension, { anything: [1, 2] });
});

t.test('null optional fields count as absent', async (t) => {
  const config = validConfig();
  config.mounts = null;
  config.hooks = null;
  config.process.rlimits = null;
  config.linux.devices = null;
  const parsed = parse(config);
  t.notOk('mounts' in parsed);
  t.notOk('rlimits' in parsed.process!);
});

t.test('process is optional', async (t) => {
  const config = validConfig();
  delete config.process;
  t.equal(parse(config).process, undefined);
});

t.test('relative mount destinations are made absolute (deprecated but valid)', async (t) => {
  const config = validConfig();
  config.mounts[0].destination = 'proc';
  t.equal(parse(config).mounts![0].destination, '/proc');
});

t.test('rootfsPropagation accepts the spec values and the recursive forms runc accepts', async (t) => {
  for (const value of ['shared', 'slave', 'private', 'unbindable', 'rshared', 'rslave', 'rprivate', 'runbindable']) {
    const config = validConfig();
    config.linux.rootfsPropagation = value;
    t.doesNotThrow(() => parse(config), value);
  }
});

t.test('a joined user namespace needs no mappings', async (t) => {
  const config = validConfig();
  config.linux.namespaces.push({ type: 'user', path: '/proc/1/ns/user' });
  t.doesNotThrow(() => parse(config));
});

t.test('top level errors', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['{', 'config.json', /^config\.json: invalid JSON: /],
    ['{"a": }', 'config.json', /invalid JSON/],
    ['[]', 'config.json', /must be an object/],
    ['null', 'config.json', /must be an object/],
  ];
  for (const [text, field, reason] of cases) {
    try {
      parseConfig(text);
      t.fail(`${text} should not parse`);
    } catch (error) {
      t.ok(error instanceof ConfigError);
      t.equal((error as ConfigError).field, field);
      t.match((error as Error).message, reason);
      t.notMatch((error as Error).message, /\n/);
    }
  }
});

t.test('ociVersion and root', async (t) => {
  rejects(t, 'missing ociVersion', (c) => delete c.ociVersion, 'ociVersion', /is required/);
  rejects(t, 'numeric ociVersion', (c) => (c.ociVersion = 1), 'ociVersion', /must be a string/);
  rejects(t, 'non-semver', (c) => (c.ociVersion = '1.0'), 'ociVersion', /SemVer/);
  rejects(t, 'major 2', (c) => (c.ociVersion = '2.0.0'), 'ociVersion', /unsupported/);
  rejects(t, 'missing root', (c) => delete c.root, 'root', /is required/);
  rejects(t, 'root not object', (c) => (c.root = 'rootfs'), 'root', /must be an object/);
  rejects(t, 'empty root.path', (c) => (c.root.path = ''), 'root.path', /must be a non-empty string/);
  rejects(t, 'missing root.path', (c) => delete c.root.path, 'root.path', /is required/);
  rejects(t, 'root.readonly string', (c) => (c.root.readonly = 'yes'), 'root.readonly', /must be a boolean/);
  rejects(t, 'hostname number', (c) => (c.hostname = 5), 'hostname', /must be a string/);
});

t.test('process errors', async (t) => {
  rejects(t, 'process array', (c) => (c.process = []), 'process', /must be an object/);
  rejects(t, 'no args', (c) => delete c.process.args, 'process.args', /must be a non-empty array of strings/);
  rejects(t, 'empty args', (c) => (c.process.args = []), 'process.args', /must be a non-empty array of strings/);
  rejects(t, 'args string', (c) => (c.process.args = 'sh'), 'process.args', /must be a non-empty array of strings/);
  rejects(t, 'args number entry', (c) => (c.process.args = ['sh', 1]), 'process.args[1]', /must be a string/);
  rejects(t, 'missing cwd', (c) => delete c.process.cwd, 'process.cwd', /is required/);
  rejects(t, 'relative cwd', (c) => (c.process.cwd = 'tmp'), 'process.cwd', /must be an absolute path/);
  rejects(t, 'terminal string', (c) => (c.process.terminal = 'true'), 'process.terminal', /must be a boolean/);
  rejects(
    t,
    'consoleSize width',
    (c) => (c.process.consoleSize = { height: 25 }),
    'process.consoleSize.width',
    /is required/,
  );
  rejects(t, 'env not array', (c) => (c.process.env = 'A=b'), 'process.env', /must be an array/);
  rejects(t, 'env number', (c) => (c.process.env = ['A=b', 3]), 'process.env[1]', /must be a string/);
  rejects(t, 'env no equals', (c) => (c.process.env = ['A=b', 'NOVALUE']), 'process.env[1]', /KEY=value/);
  rejects(t, 'env empty key', (c) => (c.process.env = ['=value']), 'process.env[0]', /KEY=value/);
  rejects(t, 'env NUL', (c) => (c.process.env = ['A=b\u0000c']), 'process.env[0]', /NUL/);
  rejects(t, 'negative uid', (c) => (c.process.user.uid = -1), 'process.user.uid', /must be a non-negative integer/);
  rejects(t, 'fractional gid', (c) => (c.process.user.gid = 1.5), 'process.user.gid', /must be a non-negative integer/);
  rejects(t, 'string uid', (c) => (c.process.user.uid = '0'), 'process.user.uid', /must be a non-negative integer/);
  rejects(
    t,
    'uid too large',
    (c) => (c.process.user.uid = 2 ** 32),
    'process.user.uid',
    /out of range: uids and gids must be in range 0-2147483647/,
  );
  // (uid_t)-1 is "unchanged" to setresuid: runc's range stops at 2^31-1.
  rejects(
    t,
    'uid 4294967295',
    (c) => (c.process.user.uid = 4294967295),
    'process.user.uid',
    /4294967295 is out of range: uids and gids must be in range 0-2147483647/,
  );
  rejects(t, 'uid 2^31', (c) => (c.process.user.uid = 2 ** 31), 'process.user.uid', /out of range/);
  rejects(t, 'gid 4294967295', (c) => (c.process.user.gid = 4294967295), 'process.user.gid', /out of range/);
  rejects(
    t,
    'additionalGid 4294967295',
    (c) => (c.process.user.additionalGids = [5, 4294967295]),
    'process.user.additionalGids[1]',
    /out of range/,
  );
  const highest = validConfig();
  highest.process.user = { uid: 2147483647, gid: 2147483647, additionalGids: [2147483647] };
  t.doesNotThrow(() => parse(highest), '2147483647 is still a valid uid and gid');
  rejects(t, 'missing gid', (c) => delete c.process.user.gid, 'process.user.gid', /is required/);
  rejects(
    t,
    'additionalGids',
    (c) => (c.process.user.additionalGids = [5, -6]),
    'process.user.additionalGids[1]',
    /non-negative/,
  );
  rejects(t, 'umask', (c) => (c.process.user.umask = 0o10000), 'process.user.umask', /between 0 and 4095/);
  rejects(
    t,
    'caps not array',
    (c) => (c.process.capabilities.bounding = 'CAP_KILL'),
    'process.capabilities.bounding',
    /array of strings/,
  );
  rejects(
    t,
    'caps entry',
    (c) => (c.process.capabilities.ambient = [7]),
    'process.capabilities.ambient[0]',
    /must be a string/,
  );
  rejects(
    t,
    'oomScoreAdj range',
    (c) => (c.process.oomScoreAdj = 1001),
    'process.oomScoreAdj',
    /between -1000 and 1000/,
  );
  rejects(t, 'noNewPrivileges', (c) => (c.process.noNewPrivileges = 1), 'process.noNewPrivileges', /must be a boolean/);
  rejects(t, 'apparmorProfile', (c) => (c.process.apparmorProfile = {}), 'process.apparmorProfile', /must be a string/);
  rejects(
    t,
    'ioPriority class',
    (c) => (c.process.ioPriority.class = 'IOPRIO_CLASS_X'),
    'process.ioPriority.class',
    /unknown I\/O priority class "IOPRIO_CLASS_X"/,
  );
  rejects(
    t,
    'ioPriority priority',
    (c) => (c.process.ioPriority.priority = 8),
    'process.ioPriority.priority',
    /between 0 and 7/,
  );
  rejects(
    t,
    'scheduler policy',
    (c) => (c.process.scheduler.policy = 'SCHED_X'),
    'process.scheduler.policy',
    /unknown scheduler policy/,
  );
  rejects(t, 'scheduler nice', (c) => (c.process.scheduler.nice = 20), 'process.scheduler.nice', /between -20 and 19/);
  rejects(
    t,
    'scheduler priority for OTHER',
    (c) => (c.process.scheduler.policy = 'SCHED_OTHER'),
    'process.scheduler.priority',
    /SCHED_FIFO or SCHED_RR/,
  );
  rejects(
    t,
    'scheduler flag',
    (c) => (c.process.scheduler.flags = ['X']),
    'process.scheduler.flags[0]',
    /unknown scheduler flag "X"/,
  );
  rejects(
    t,
    'cpu affinity',
    (c) => (c.process.execCPUAffinity.final = '0-3,x'),
    'process.execCPUAffinity.final',
    /CPU list/,
  );
});

t.test('rlimits', async (t) => {
  rejects(
    t,
    'unknown type',
    (c) => (c.process.rlimits[0].type = 'RLIMIT_FOO'),
    'process.rlimits[0].type',
    /^process\.rlimits\[0\]\.type: unknown rlimit "RLIMIT_FOO"$/,
  );
  rejects(
    t,
    'duplicate',
    (c) => c.process.rlimits.push({ type: 'RLIMIT_NOFILE', soft: 1, hard: 1 }),
    'process.rlimits[1].type',
    /duplicate rlimit "RLIMIT_NOFILE"/,
  );
  rejects(t, 'missing soft', (c) => delete c.process.rlimits[0].soft, 'process.rlimits[0].soft', /is required/);
  rejects(
    t,
    'negative hard',
    (c) => (c.process.rlimits[0].hard = -1),
    'process.rlimits[0].hard',
    /non-negative integer/,
  );
  rejects(t, 'not array', (c) => (c.process.rlimits = {}), 'process.rlimits', /must be an array/);

  const config = validConfig();
  config.process.rlimits[0].hard = Number('18446744073709551615'); // RLIM_INFINITY, as JSON.parse reads it
  t.doesNotThrow(() => parse(config), 'RLIM_INFINITY is accepted');
});

t.test('mounts', async (t) => {
  rejects(t, 'not array', (c) => (c.mounts = {}), 'mounts', /must be an array/);
  rejects(t, 'entry not object', (c) => (c.mounts[1] = 'x'), 'mounts[1]', /must be an object/);
  rejects(t, 'missing destination', (c) => delete c.mounts[2].destination, 'mounts[2].destination', /is required/);
  rejects(t, 'empty destination', (c) => (c.mounts[2].destination = ''), 'mounts[2].destination', /non-empty string/);
  rejects(t, 'numeric destination', (c) => (c.mounts[2].destination = 7), 'mounts[2].destination', /non-empty string/);
  rejects(t, 'type', (c) => (c.mounts[0].type = 1), 'mounts[0].type', /must be a string/);
  rejects(t, 'source', (c) => (c.mounts[0].source = ['proc']), 'mounts[0].source', /must be a string/);
  rejects(t, 'options string', (c) => (c.mounts[1].options = 'ro'), 'mounts[1].options', /must be an array of strings/);
  rejects(t, 'options entry', (c) => (c.mounts[1].options = ['ro', 5]), 'mounts[1].options[1]', /must be a string/);
  rejects(t, 'empty option', (c) => (c.mounts[1].options = ['ro', '']), 'mounts[1].options[1]', /non-empty string/);
  rejects(t, 'bind without source', (c) => delete c.mounts[2].source, 'mounts[2].source', /required for a bind mount/);
  rejects(
    t,
    'idmap without mappings or userns',
    (c) => c.mounts[2].options.push('idmap'),
    'mounts[2].options',
    /"idmap" needs uidMappings\/gidMappings/,
  );
  rejects(
    t,
    'uidMappings without gidMappings',
    (c) => {
      c.mounts[2].options.push('idmap');
      c.mounts[2].uidMappings = [{ containerID: 0, hostID: 1, size: 1 }];
    },
    'mounts[2].gidMappings',
    /required when uidMappings is set/,
  );
  rejects(
    t,
    'mapping size',
    (c) => {
      c.mounts[2].uidMappings = [{ containerID: 0, hostID: 1, size: 0 }];
      c.mounts[2].gidMappings = [{ containerID: 0, hostID: 1, size: 1 }];
    },
    'mounts[2].uidMappings[0].size',
    /greater than zero/,
  );

  const withUserns = validConfig();
  withUserns.mounts[2].options.push('idmap');
  withUserns.linux.namespaces.push({ type: 'user' });
  withUserns.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  withUserns.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  t.doesNotThrow(() => parse(withUserns), 'idmap with a user namespace uses its mappings');
});

t.test('hooks', async (t) => {
  rejects(
    t,
    'relative path',
    (c) => (c.hooks.prestart[0].path = 'bin/hook'),
    'hooks.prestart[0].path',
    /must be an absolute path/,
  );
  rejects(t, 'missing path', (c) => (c.hooks.createRuntime = [{}]), 'hooks.createRuntime[0].path', /is required/);
  rejects(
    t,
    'zero timeout',
    (c) => (c.hooks.poststart[0].timeout = 0),
    'hooks.poststart[0].timeout',
    /greater than zero/,
  );
  rejects(
    t,
    'negative timeout',
    (c) => (c.hooks.poststart[0].timeout = -3),
    'hooks.poststart[0].timeout',
    /greater than zero/,
  );
  rejects(
    t,
    'fractional timeout',
    (c) => (c.hooks.poststart[0].timeout = 1.5),
    'hooks.poststart[0].timeout',
    /must be an integer/,
  );
  rejects(t, 'args', (c) => (c.hooks.prestart[0].args = [1]), 'hooks.prestart[0].args[0]', /must be a string/);
  rejects(t, 'env', (c) => (c.hooks.prestart[0].env = ['novalue']), 'hooks.prestart[0].env[0]', /KEY=value/);
  rejects(t, 'hook list not array', (c) => (c.hooks.poststop = {}), 'hooks.poststop', /must be an array/);
  rejects(t, 'hooks not object', (c) => (c.hooks = []), 'hooks', /must be an object/);
});

t.test('annotations', async (t) => {
  rejects(
    t,
    'non-string value',
    (c) => (c.annotations['com.example.n'] = 1),
    'annotations["com.example.n"]',
    /must be a string/,
  );
  rejects(t, 'empty key', (c) => (c.annotations[''] = 'x'), 'annotations[""]', /must not be empty/);
});

t.test('linux namespaces and mappings', async (t) => {
  rejects(
    t,
    'unknown type',
    (c) => (c.linux.namespaces[1].type = 'foo'),
    'linux.namespaces[1].type',
    /^linux\.namespaces\[1\]\.type: unknown namespace type "foo"$/,
  );
  rejects(
    t,
    'duplicate',
    (c) => c.linux.namespaces.push({ type: 'pid' }),
    'linux.namespaces',
    /^linux\.namespaces: duplicate namespace "pid"$/,
  );
  rejects(
    t,
    'relative path',
    (c) => (c.linux.namespaces[0].path = 'proc/1/ns/pid'),
    'linux.namespaces[0].path',
    /absolute path/,
  );
  rejects(t, 'missing type', (c) => (c.linux.namespaces[0] = {}), 'linux.namespaces[0].type', /is required/);
  rejects(
    t,
    'new userns without mappings',
    (c) => c.linux.namespaces.push({ type: 'user' }),
    'linux.uidMappings',
    /required when a user namespace is created/,
  );
  rejects(
    t,
    'new userns without gid mappings',
    (c) => {
      c.linux.namespaces.push({ type: 'user' });
      c.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    },
    'linux.gidMappings',
    /required when a user namespace is created/,
  );
  rejects(
    t,
    'mappings without userns',
    (c) => (c.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]),
    'linux.uidMappings',
    /requires a user namespace/,
  );
  rejects(
    t,
    'mapping field',
    (c) => {
      c.linux.namespaces.push({ type: 'user' });
      c.linux.uidMappings = [{ containerID: 0, hostID: -1, size: 1 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    },
    'linux.uidMappings[0].hostID',
    /non-negative integer/,
  );
  rejects(t, 'hostname without uts', (c) => (c.linux.namespaces = [{ type: 'pid' }]), 'hostname', /UTS namespace/);
});

t.test('linux time offsets', async (t) => {
  const withTime = (c: Json) => c.linux.namespaces.push({ type: 'time' });
  rejects(
    t,
    'unknown clock',
    (c) => {
      withTime(c);
      c.linux.timeOffsets = { realtime: { secs: 1 } };
    },
    'linux.timeOffsets.realtime',
    /unknown clock "realtime"/,
  );
  rejects(
    t,
    'nanosecs too big',
    (c) => {
      withTime(c);
      c.linux.timeOffsets = { boottime: { nanosecs: 1e9 } };
    },
    'linux.timeOffsets.boottime.nanosecs',
    /between 0 and 999999999/,
  );
  rejects(
    t,
    'secs string',
    (c) => {
      withTime(c);
      c.linux.timeOffsets = { monotonic: { secs: '1' } };
    },
    'linux.timeOffsets.monotonic.secs',
    /must be an integer/,
  );
  rejects(
    t,
    'offsets without time ns',
    (c) => (c.linux.timeOffsets = { monotonic: { secs: 1 } }),
    'linux.timeOffsets',
    /time namespace/,
  );
});

t.test('linux devices', async (t) => {
  rejects(
    t,
    'unknown type',
    (c) => (c.linux.devices[0].type = 'x'),
    'linux.devices[0].type',
    /unknown device type "x"/,
  );
  rejects(t, 'missing major', (c) => delete c.linux.devices[0].major, 'linux.devices[0].major', /is required/);
  rejects(
    t,
    'missing minor for u',
    (c) => (c.linux.devices[1] = { path: '/dev/u', type: 'u', major: 1 }),
    'linux.devices[1].minor',
    /is required/,
  );
  rejects(t, 'relative path', (c) => (c.linux.devices[0].path = 'dev/fuse'), 'linux.devices[0].path', /absolute path/);
  rejects(
    t,
    'fileMode',
    (c) => (c.linux.devices[0].fileMode = -1),
    'linux.devices[0].fileMode',
    /non-negative integer/,
  );
  rejects(
    t,
    'fifo with bad major',
    (c) => (c.linux.devices[1].major = 'x'),
    'linux.devices[1].major',
    /must be a non-negative integer/,
  );
});

t.test('other linux fields', async (t) => {
  rejects(t, 'linux not object', (c) => (c.linux = 'x'), 'linux', /must be an object/);
  rejects(
    t,
    'rootfsPropagation',
    (c) => (c.linux.rootfsPropagation = 'bogus'),
    'linux.rootfsPropagation',
    /unknown rootfs propagation "bogus"/,
  );
  rejects(t, 'resources array', (c) => (c.linux.resources = []), 'linux.resources', /must be an object/);
  rejects(t, 'cgroupsPath', (c) => (c.linux.cgroupsPath = 1), 'linux.cgroupsPath', /must be a string/);
  rejects(
    t,
    'maskedPaths relative',
    (c) => (c.linux.maskedPaths = ['proc/kcore']),
    'linux.maskedPaths[0]',
    /absolute path/,
  );
  rejects(
    t,
    'readonlyPaths relative',
    (c) => (c.linux.readonlyPaths = ['/ok', 'x']),
    'linux.readonlyPaths[1]',
    /absolute path/,
  );
  rejects(
    t,
    'sysctl number',
    (c) => (c.linux.sysctl['net.core.somaxconn'] = 256),
    'linux.sysctl["net.core.somaxconn"]',
    /must be a string/,
  );
  rejects(t, 'seccomp array', (c) => (c.linux.seccomp = []), 'linux.seccomp', /must be an object/);
  rejects(
    t,
    'seccomp defaultAction',
    (c) => delete c.linux.seccomp.defaultAction,
    'linux.seccomp.defaultAction',
    /is required/,
  );
  rejects(
    t,
    'seccomp metadata without path',
    (c) => (c.linux.seccomp.listenerMetadata = 'm'),
    'linux.seccomp.listenerMetadata',
    /listenerPath/,
  );
  rejects(
    t,
    'personality',
    (c) => (c.linux.personality.domain = 'BSD'),
    'linux.personality.domain',
    /unknown personality domain "BSD"/,
  );
  rejects(t, 'mountLabel', (c) => (c.linux.mountLabel = false), 'linux.mountLabel', /must be a string/);
  rejects(
    t,
    'memBwSchema',
    (c) => (c.linux.intelRdt = { memBwSchema: 'L3:0=1' }),
    'linux.intelRdt.memBwSchema',
    /must start with "MB:"/,
  );
  rejects(
    t,
    'schemata newline',
    (c) => (c.linux.intelRdt = { schemata: ['L3:0=1\nMB:0=2'] }),
    'linux.intelRdt.schemata[0]',
    /newlines/,
  );
  rejects(
    t,
    'memoryPolicy mode',
    (c) => (c.linux.memoryPolicy = { mode: 'MPOL_X' }),
    'linux.memoryPolicy.mode',
    /unknown memory policy mode/,
  );
  rejects(
    t,
    'netDevices',
    (c) => (c.linux.netDevices = { eth0: { name: 1 } }),
    'linux.netDevices.eth0.name',
    /must be a string/,
  );
});

t.test('scheduler, memory policy, CPU lists and netDevices: the rules runc and the kernel apply', async (t) => {
  const refused = (mutate: (c: Json) => void, message: RegExp, label: string): void => {
    const config = validConfig();
    mutate(config);
    t.throws(() => parseConfig(JSON.stringify(config)), message, label);
  };
  const accepted = (mutate: (c: Json) => void, label: string): void => {
    const config = validConfig();
    mutate(config);
    t.doesNotThrow(() => parseConfig(JSON.stringify(config)), label);
  };
  refused(
    (c) => {
      c.process.scheduler = { policy: 'SCHED_OTHER', period: 10 };
    },
    /^process\.scheduler\.period: can only be set for SCHED_DEADLINE$/,
    'deadline times need SCHED_DEADLINE',
  );
  accepted((c) => {
    c.process.scheduler = { policy: 'SCHED_DEADLINE', runtime: 1, deadline: 2, period: 3 };
  }, 'SCHED_DEADLINE takes them');
  accepted((c) => {
    c.process.scheduler = { policy: 'SCHED_OTHER', runtime: 0 };
  }, 'zero is "not set"');
  refused(
    (c) => {
      c.linux = { memoryPolicy: { mode: 'MPOL_DEFAULT', nodes: '1' } };
    },
    /^linux\.memoryPolicy\.nodes: must be empty for MPOL_DEFAULT$/,
    'MPOL_DEFAULT takes no node',
  );
  refused(
    (c) => {
      c.linux = { memoryPolicy: { mode: 'MPOL_PREFERRED_MANY', nodes: '' } };
    },
    /needs at least one node/,
    'MPOL_PREFERRED_MANY needs one',
  );
  accepted((c) => {
    c.linux.memoryPolicy = { mode: 'MPOL_PREFERRED' };
  }, 'MPOL_PREFERRED with none means local');
  refused(
    (c) => {
      c.linux = { memoryPolicy: { mode: 'MPOL_BIND', nodes: '1024' } };
    },
    /NUMA node 1024 is out of range: at most 1023/,
    'a node past the mask',
  );
  refused(
    (c) => {
      c.process.execCPUAffinity = { initial: '8192' };
    },
    /^process\.execCPUAffinity\.initial: CPU 8192 is out of range: at most 8191$/,
    'a CPU past the mask',
  );
  refused(
    (c) => {
      c.process.execCPUAffinity = { final: '2-1' };
    },
    /ends before it starts/,
    'a backwards range',
  );
  const withNet =
    (devices: Json) =>
    (c: Json): void => {
      c.linux = { namespaces: [{ type: 'network' }, { type: 'uts' }], netDevices: devices };
    };
  accepted(withNet({ eth0: { name: 'ctr%d' }, eth1: {} }), 'interface names and a template');
  refused(
    withNet({ 'a-name-that-is-too-long': {} }),
    /is not an interface name: 1 to 15 bytes/,
    'longer than IFNAMSIZ',
  );
  refused(
    withNet({ eth0: { name: 'a b' } }),
    /^linux\.netDevices\.eth0\.name: "a b" is not an interface name/,
    'white space',
  );
  refused(withNet({ eth0: { name: '..' } }), /is not an interface name/, '".."');
  refused(
    withNet({ eth0: { name: 'x' }, eth1: { name: 'x' } }),
    /a second device would be named "x"/,
    'two devices, one name',
  );
  refused(withNet({ eth0: { name: 'a%s' } }), /a template takes one "%d" and no other "%"/, 'a template other than %d');
  refused(withNet({ eth0: { name: 'x%d%d' } }), /a template takes one "%d"/, 'two %d');
  accepted(withNet({ wlx001122334455: {} }), 'a name of 15 bytes');
  refused(
    (c) => {
      c.linux = { netDevices: { eth0: {} } };
    },
    /^linux\.netDevices: requires a network namespace in linux\.namespaces$/,
    'no network namespace',
  );
});
