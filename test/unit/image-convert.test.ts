/**
 * Image config -> runtime config (image-spec conversion.md), without root:
 * args, env, cwd, user through the image's passwd/group, annotations and
 * their precedence, the overrides, and every refusal naming its field.
 */
import t from 'tap';
import { parseConfig } from '../../src/lib/config';
import {
  convertImageConfig,
  imageAnnotations,
  type ImageConfig,
  mergeEnv,
  resolveUser,
} from '../../src/lib/image/convert';
import { formatProgress } from '../../src/cli/progress';

const SOURCE = { id: `sha256:${'a'.repeat(64)}`, store: '/var/lib/tsrun', ref: 'busybox:latest' };

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  'broken line',
  '',
].join('\n');
const GROUP = ['root:x:0:', 'wheel:x:10:app,root', 'app:x:1000:', 'audio:x:29:daemon,app', 'staff:x:50:'].join('\n');
const FILES = { passwd: PASSWD, group: GROUP };

t.test('Config.User forms', async (t) => {
  t.same(resolveUser(undefined, FILES, 'User'), { uid: 0, gid: 0 }, 'no user: root');
  t.same(resolveUser('', FILES, 'User'), { uid: 0, gid: 0 });
  t.same(
    resolveUser('app', FILES, 'User'),
    { uid: 1000, gid: 1000, additionalGids: [10, 29] },
    'a name: its groups too',
  );
  t.same(resolveUser('root', FILES, 'User'), { uid: 0, gid: 0, additionalGids: [10] });
  t.same(resolveUser('1000', FILES, 'User'), { uid: 1000, gid: 1000 }, 'a uid: its passwd gid, no additional groups');
  t.same(resolveUser('4242', FILES, 'User'), { uid: 4242, gid: 0 }, 'a uid not in passwd is still taken');
  t.same(resolveUser('app:staff', FILES, 'User'), { uid: 1000, gid: 50 }, 'a group given: no additional groups');
  t.same(resolveUser('app:77', FILES, 'User'), { uid: 1000, gid: 77 });
  t.same(resolveUser('7:8', {}, 'User'), { uid: 7, gid: 8 }, 'numbers need no files');
  t.same(resolveUser('0:audio', FILES, 'User'), { uid: 0, gid: 29 });
  t.throws(
    () => resolveUser('nobody', FILES, 'image config User'),
    /^image config User: no user "nobody" in the image's \/etc\/passwd$/,
  );
  t.throws(() => resolveUser('app', {}, 'User'), /no user "app"/, 'an image without /etc/passwd knows no names');
  t.throws(
    () => resolveUser('app:nogroup', FILES, '--user'),
    /^--user: no group "nogroup" in the image's \/etc\/group$/,
  );
  t.throws(() => resolveUser('app:', FILES, 'User'), /"app:" is not user\[:group\]/);
  t.throws(() => resolveUser(':1', FILES, 'User'), /is not user\[:group\]/);
});

t.test("Config.User past runc's range 0-2147483647 is refused: (uid_t)-1 would leave the process root", async (t) => {
  const high = { passwd: `${PASSWD}\nghost:x:4294967295:1000::/:/bin/sh`, group: `${GROUP}\nbig:x:2147483648:ghost` };
  const range = /out of range: uids and gids must be in range 0-2147483647$/;
  t.throws(
    () => resolveUser('4294967295', FILES, 'image config User'),
    /^image config User: "4294967295" gives id 4294967295, which is out of range/,
  );
  t.throws(() => resolveUser('0:4294967295', FILES, '--user'), range, 'a numeric group');
  t.throws(() => resolveUser('2147483648', FILES, 'User'), range, 'the first id past the range');
  t.throws(() => resolveUser('ghost', high, 'User'), range, 'a name the image passwd maps past the range');
  t.throws(() => resolveUser('app:big', high, 'User'), range, 'a group the image group file maps past it');
  t.same(
    resolveUser('2147483647:2147483647', FILES, 'User'),
    { uid: 2147483647, gid: 2147483647 },
    'the last id in the range is taken',
  );
});

t.test('Entrypoint, Cmd, Env, WorkingDir on top of the spec defaults', async (t) => {
  const image: ImageConfig = {
    os: 'linux',
    architecture: 'amd64',
    config: {
      Entrypoint: ['/bin/app', '--serve'],
      Cmd: ['--port', '80'],
      Env: ['FOO=1', 'PATH=/app/bin'],
      WorkingDir: '/srv',
      User: 'app',
    },
  };
  const c = convertImageConfig(image, SOURCE, FILES);
  t.same(c.process!.args, ['/bin/app', '--serve', '--port', '80'], 'Cmd appended to Entrypoint');
  t.same(c.process!.env, ['FOO=1', 'PATH=/app/bin'], "the image's PATH, nothing added");
  t.equal(c.process!.cwd, '/srv');
  t.same(c.process!.user, { uid: 1000, gid: 1000, additionalGids: [10, 29] });
  t.equal(c.process!.terminal, false);
  t.same(c.root, { path: 'rootfs', readonly: false }, 'writable: the overlay upper takes the writes');
  t.equal(c.process!.noNewPrivileges, true, "tsrun spec's defaults underneath");
  t.same(c.process!.capabilities!.bounding, ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']);
  t.doesNotThrow(() => parseConfig(JSON.stringify(c)), 'the result is a valid config.json');

  const bare = convertImageConfig({ config: { Cmd: ['sh'] } }, SOURCE, {});
  t.same(
    bare.process!.env,
    ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    'PATH added only when the image has none',
  );
  t.equal(bare.process!.cwd, '/');
  t.same(bare.process!.user, { uid: 0, gid: 0 });
  t.throws(
    () => convertImageConfig({ config: {} }, SOURCE, {}),
    /^image busybox:latest has no Entrypoint or Cmd: give a command$/,
  );
  t.throws(
    () => convertImageConfig({ config: { Cmd: 'sh' as never } }, SOURCE, {}),
    /^image config Cmd: expected a list of strings$/,
  );
  t.throws(
    () => convertImageConfig({ config: { Cmd: ['sh'], WorkingDir: 'rel' } }, SOURCE, {}),
    /^image config WorkingDir: "rel" is not an absolute path$/,
  );
  t.throws(
    () => convertImageConfig({ config: { Cmd: ['sh'], User: 'ghost' } }, SOURCE, FILES),
    /^image config User: no user "ghost"/,
  );
});

t.test('overrides: command, entrypoint, env, cwd, user, hostname, tty, read-only', async (t) => {
  const image: ImageConfig = { config: { Entrypoint: ['/bin/app'], Cmd: ['--default'], Env: ['A=1', 'B=2'] } };
  const c = convertImageConfig(image, SOURCE, FILES, {
    command: ['--other'],
    env: ['B=3', 'C=4'],
    cwd: '/tmp',
    user: '1000:50',
    hostname: 'box',
    tty: true,
    readOnly: true,
  });
  t.same(c.process!.args, ['/bin/app', '--other'], 'a command replaces Cmd, keeps Entrypoint');
  t.same(c.process!.env, [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'A=1',
    'B=3',
    'TERM=xterm',
    'C=4',
  ]);
  t.equal(c.process!.cwd, '/tmp');
  t.same(c.process!.user, { uid: 1000, gid: 50 });
  t.equal(c.hostname, 'box');
  t.equal(c.process!.terminal, true);
  t.equal(c.root!.readonly, true);
  t.same(
    convertImageConfig(image, SOURCE, FILES, { entrypoint: '/bin/sh' }).process!.args,
    ['/bin/sh'],
    '--entrypoint drops Cmd',
  );
  t.same(
    convertImageConfig(image, SOURCE, FILES, { entrypoint: '', command: ['ls'] }).process!.args,
    ['ls'],
    '--entrypoint "" clears it',
  );
  t.throws(() => convertImageConfig(image, SOURCE, FILES, { cwd: 'x' }), /^--cwd: "x" is not an absolute path$/);
  t.throws(() => convertImageConfig(image, SOURCE, FILES, { user: 'ghost' }), /^--user: no user "ghost"/);
  t.throws(
    () => convertImageConfig(image, SOURCE, FILES, { env: ['NOEQUALS'] }),
    /^--env: "NOEQUALS" is not NAME=VALUE$/,
  );
});

t.test('annotations: implicit ones, Labels over them, tsrun names the image', async (t) => {
  const image: ImageConfig = {
    os: 'linux',
    architecture: 'amd64',
    variant: 'v3',
    'os.version': '12',
    'os.features': ['a', 'b'],
    author: 'me',
    created: '2026-01-01T00:00:00Z',
    config: {
      Cmd: ['sh'],
      StopSignal: 'SIGQUIT',
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Labels: { 'org.opencontainers.image.author': 'label wins', x: 'y' },
    },
  };
  t.same(imageAnnotations(image), {
    'org.opencontainers.image.os': 'linux',
    'org.opencontainers.image.architecture': 'amd64',
    'org.opencontainers.image.variant': 'v3',
    'org.opencontainers.image.os.version': '12',
    'org.opencontainers.image.os.features': 'a,b',
    'org.opencontainers.image.author': 'label wins',
    'org.opencontainers.image.created': '2026-01-01T00:00:00Z',
    'org.opencontainers.image.stopSignal': 'SIGQUIT',
    'org.opencontainers.image.exposedPorts': '80/tcp,53/udp',
    x: 'y',
  });
  const c = convertImageConfig(image, SOURCE, {});
  t.equal(c.annotations!['org.tsrun.image.id'], SOURCE.id);
  t.equal(c.annotations!['org.tsrun.image.store'], SOURCE.store);
  t.equal(c.annotations!['org.tsrun.image.ref'], SOURCE.ref);
  t.throws(
    () => imageAnnotations({ config: { Labels: { 'org.tsrun.image.id': 'x' } } }),
    /Labels: "org\.tsrun\.image\.id" is reserved for tsrun/,
  );
  t.throws(() => imageAnnotations({ config: { Labels: { n: 1 as never } } }), /Labels\.n: expected a string/);
});

t.test('mergeEnv replaces in place and appends the rest', async (t) => {
  t.same(mergeEnv(['A=1', 'B=2', 'BARE'], ['B=', 'BARE=x', 'C=3']), ['A=1', 'B=', 'BARE=x', 'C=3']);
  t.same(mergeEnv(['AB=1'], ['A=2']), ['AB=1', 'A=2'], 'a name is matched whole, not as a prefix');
});

t.test('the progress line', async (t) => {
  t.equal(
    formatProgress({ phase: 'layers', bytesDone: 5e6, bytesTotal: 20e6, layersDone: 1, layersTotal: 4 }),
    'layers 1/4 [######------------------] 5.0/20.0 MB',
  );
  t.equal(
    formatProgress({ phase: 'archive', bytesDone: 0, bytesTotal: 0, layersDone: 0, layersTotal: 0 }),
    'reading archive [------------------------] 0.0/0.0 MB',
  );
  // Narrow terminals: the bar shrinks, then goes; the line never reaches the last column.
  const p = { phase: 'layers' as const, bytesDone: 61e6, bytesTotal: 122e6, layersDone: 3, layersTotal: 12 };
  t.equal(formatProgress(p, 40), 'layers 3/12 [######-----] 61.0/122.0 MB');
  t.ok(formatProgress(p, 40).length <= 39);
  t.equal(formatProgress(p, 30), 'layers 3/12 61.0/122.0 MB', 'no room for a bar');
  t.equal(formatProgress(p, 11), 'layers 3/1', 'cut at the width');
});

t.test("image ls: docker's human durations and sizes", async (t) => {
  const { humanDuration, humanSize } = await import('../../src/cli/image-table');
  const cases: Array<[number, string]> = [
    [0.5, 'Less than a second'],
    [1, '1 second'],
    [30, '30 seconds'],
    [90, 'About a minute'],
    [600, '10 minutes'],
    [3600, 'About an hour'],
    [5 * 3600, '5 hours'],
    [3 * 86400, '3 days'],
    [20 * 86400, '2 weeks'],
    [100 * 86400, '3 months'],
    [800 * 86400, '2 years'],
  ];
  for (const [s, text] of cases) t.equal(humanDuration(s), text, `${s} s`);
  t.equal(humanSize(999), '999B');
  t.equal(humanSize(4_260_000), '4.26MB');
  t.equal(humanSize(1_500_000_000), '1.5GB');
});

t.test("a user's image: a user namespace with its store's map, and no resources (as spec --rootless)", async (t) => {
  const maps = {
    uidMappings: [
      { containerID: 0, hostID: 1000, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ],
    gidMappings: [
      { containerID: 0, hostID: 1000, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ],
  };
  const c = convertImageConfig(
    { config: { Cmd: ['sh'] } },
    SOURCE,
    FILES,
    {},
    { cgroupNamespace: false, userStore: maps },
  );
  t.same(
    c.linux!.namespaces!.map((n) => n.type),
    ['pid', 'network', 'ipc', 'uts', 'mount', 'user'],
    'its own network namespace stays (the user namespace owns it)',
  );
  t.same(c.linux!.uidMappings, maps.uidMappings);
  t.same(c.linux!.gidMappings, maps.gidMappings);
  t.equal(c.linux!.resources, undefined);
  t.ok(parseConfig(JSON.stringify(c)), 'a valid config');
  const root = convertImageConfig({ config: { Cmd: ['sh'] } }, SOURCE, FILES);
  t.notOk(
    root.linux!.namespaces!.some((n) => n.type === 'user'),
    "root's has none",
  );
});
