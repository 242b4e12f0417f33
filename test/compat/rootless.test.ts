/**
 * tsrun and runc run by the same unprivileged user on the same bundles
 * (`runc spec --rootless`, the config a runc user has): what the container
 * sees (its ids, maps, setgroups, capabilities, mounts and cgroups) and how
 * each refuses what it cannot do.  Differences are on purpose and listed.
 */
import t from 'tap';
import fs = require('fs');
import path = require('path');
import { type Config } from '../../src/lib/config';
import { differsOnPurpose, REFERENCE, referenceInstalled } from '../compat-helpers';
import { IS_ROOT } from '../helpers';
import {
  asUser,
  makeTestUser,
  mapRanges,
  tsrunAsUser,
  userBundle,
  userState,
  writeUserConfig,
} from '../rootless-helpers';

if (!IS_ROOT || !referenceInstalled()) {
  t.plan(0, 'needs root (to make the test user) and runc');
  process.exit(0);
}

const user = makeTestUser(t);
let ids = 0;
const PROBE = [
  'id',
  'cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups',
  'grep -E "^(Cap|NoNewPrivs|Seccomp:)" /proc/self/status',
  // mount root, mount point, options, type, super options (with the user's ids named alike)
  'cut -d" " -f4,5,6,9 /proc/self/mountinfo',
  'ls -ln /dev | cut -c1-10,30-',
  'hostname',
].join('; ');

/** The bundle with runc's own rootless config, run by runc and by tsrun as the user. */
/** The output's lines, sorted, less the ls time stamps. */
const lines = (s: string): string[] =>
  s
    .split('\n')
    .map((l) => l.replace(/ [A-Z][a-z]{2} +\d+ \d\d:\d\d /, ' '))
    .sort();

type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: any[]) => any>>[0];

function both(t: TapTest, mutate: (c: Config) => void) {
  const b = userBundle(t, user);
  fs.rmSync(path.join(b.dir, 'config.json'));
  const spec = asUser(user, [REFERENCE.bin, 'spec', '--rootless'], { cwd: b.dir });
  t.equal(spec.status, 0, spec.stderr);
  b.config = JSON.parse(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8'));
  b.config.process!.terminal = false;
  mutate(b.config);
  writeUserConfig(b, user);
  const id = `rlc-${process.pid}-${++ids}`;
  const runcRoot = path.join(user.runtimeDir, 'runc');
  const runc = asUser(user, [REFERENCE.bin, '--root', runcRoot, 'run', '-b', b.dir, id]);
  const tsrun = tsrunAsUser(user, ['run', '-b', b.dir, id]);
  t.same(userState(user), [], 'tsrun left no state');
  return { runc, tsrun };
}

t.test("runc's rootless spec: the container sees the same under both", async (t) => {
  const { runc, tsrun } = both(t, (c) => {
    c.process!.args = ['sh', '-c', PROBE];
  });
  t.equal(runc.status, 0, runc.stderr);
  t.equal(tsrun.status, 0, tsrun.stderr);
  // mountinfo lists mounts in the order they were made, which differs (runc binds the rootfs later)
  t.same(lines(tsrun.stdout), lines(runc.stdout), 'same view, masks named alike');
});

t.test('uid and gid ranges through newuidmap/newgidmap: the same maps; the groups differ on purpose', async (t) => {
  differsOnPurpose(t, 'rootless-groups');
  const { runc, tsrun } = both(t, (c) => {
    mapRanges(c, user);
    c.process!.args = ['sh', '-c', `${PROBE}; grep Groups /proc/self/status`];
  });
  t.equal(runc.status, 0, runc.stderr);
  t.equal(tsrun.status, 0, tsrun.stderr);
  const notGroups = (s: string) => lines(s).filter((l) => !/^(uid=|Groups:)/.test(l));
  t.same(notGroups(tsrun.stdout), notGroups(runc.stdout), 'the same but for the groups');
  // runc leaves the user's host groups on the process (unmapped: nogroup); tsrun sets the config's (none).
  t.match(runc.stdout, /^Groups:\t\d+/m);
  t.match(tsrun.stdout, /^Groups:\t\s*$/m);
});

t.test('both refuse, and tsrun leaves nothing', async (t) => {
  const cases: Array<[string, (c: Config) => void]> = [
    [
      'no user namespace',
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'user');
        delete c.linux!.uidMappings;
        delete c.linux!.gidMappings;
      },
    ],
    [
      'a memory limit, no cgroup for the user',
      (c) => {
        c.linux!.resources = { memory: { limit: 64 << 20 } };
      },
    ],
    [
      'additional gids with setgroups denied',
      (c) => {
        c.process!.user = { uid: 0, gid: 0, additionalGids: [10] };
      },
    ],
    [
      'a uid range the user was not given',
      (c) => {
        c.linux!.uidMappings = [
          { containerID: 0, hostID: user.uid, size: 1 },
          { containerID: 1, hostID: 1, size: 10 },
        ];
      },
    ],
  ];
  for (const [name, mutate] of cases) {
    const { runc, tsrun } = both(t, (c) => {
      c.process!.args = ['true'];
      mutate(c);
    });
    t.not(runc.status, 0, `${name}: runc refuses`);
    t.equal(tsrun.status, 1, `${name}: tsrun refuses`);
    t.equal(tsrun.stderr.trim().split('\n').length, 1, `${name}: in one line (${tsrun.stderr.trim()})`);
  }
});

t.test('events --stats without a cgroup: runc prints zeros, tsrun says there is none', async (t) => {
  differsOnPurpose(t, 'rootless-stats-without-cgroup');
  const b = userBundle(t, user);
  b.config.process!.args = ['sleep', '1000'];
  writeUserConfig(b, user);
  const id = `rlc-${process.pid}-${++ids}`;
  const runcRoot = path.join(user.runtimeDir, 'runc');
  t.teardown(() => asUser(user, [REFERENCE.bin, '--root', runcRoot, 'delete', '--force', id]));
  t.teardown(() => tsrunAsUser(user, ['delete', '--force', id]));
  t.equal(asUser(user, [REFERENCE.bin, '--root', runcRoot, 'run', '-d', '-b', b.dir, id]).status, 0);
  t.equal(tsrunAsUser(user, ['run', '-d', '-b', b.dir, id]).status, 0);
  const runc = asUser(user, [REFERENCE.bin, '--root', runcRoot, 'events', '--stats', id]);
  t.equal(runc.status, 0, runc.stderr);
  const stats = JSON.parse(runc.stdout);
  t.equal(stats.type, 'stats');
  t.notOk(stats.data.pids?.current, 'runc: no pids counted: zeros, as if the container ran nothing');
  const tsrun = tsrunAsUser(user, ['events', '--stats', id]);
  t.equal(tsrun.status, 1);
  t.match(tsrun.stderr, /events --stats: the container has no cgroup to read/);
});

t.test(
  "the container's root mapped to a subordinate id, the user itself to another: tsrun runs it, runc fails",
  async (t) => {
    differsOnPurpose(t, 'rootless-root-not-the-user');
    const { runc, tsrun } = both(t, (c) => {
      c.linux!.uidMappings = [
        { containerID: 0, hostID: user.subuid!, size: 1000 },
        { containerID: 1000, hostID: user.uid, size: 1 },
      ];
      c.linux!.gidMappings = [
        { containerID: 0, hostID: user.subgid!, size: 1000 },
        { containerID: 1000, hostID: user.gid, size: 1 },
      ];
      c.process!.args = ['sh', '-c', 'id -u; stat -c %u /proc/self/fd/1 /bin/sh; echo hi > /proc/self/fd/1'];
    });
    t.not(runc.status, 0);
    t.match(
      runc.stderr,
      /fchown fd \d+: operation not permitted/,
      "runc cannot give its own fds to the container's root",
    );
    t.equal(tsrun.status, 0, tsrun.stderr);
    // The pipe, the user's (1000 inside), is given to the container's root from inside, so it may reopen it.
    t.equal(tsrun.stdout, '0\n0\n1000\nhi\n');
  },
);
