/**
 * tsrun run by an unprivileged user (issue 20), on this host's real
 * kernel: a user made for the test, its bundle from `tsrun spec
 * --rootless`, its state in $XDG_RUNTIME_DIR/tsrun.  The lifecycle, the
 * id maps (its own id written directly, ranges through newuidmap and
 * newgidmap), what needs a cgroup the user has not got, and the failure
 * paths, each with nothing left behind.
 */
import t from 'tap';
import { spawnSync } from 'child_process';
import fs = require('fs');
import path = require('path');
import { detectLayout, readHierarchies } from '../../src/lib/cgroup/manager';
import { native } from '../../src/lib/native';
import { differsOnPurpose } from '../compat-helpers';
import { drainPty, IS_ROOT, makeBundle, tsrun, TSRUN, waitFor } from '../helpers';
import {
  asUser,
  makeTestUser,
  mapRanges,
  type TestUser,
  tsrunAsUser,
  userBundle,
  userState,
  writeUserConfig,
} from '../rootless-helpers';

if (!IS_ROOT) {
  t.plan(0, 'rootless tests need root, to make the test user');
  process.exit(0);
}

const user: TestUser = makeTestUser(t);
const unified = detectLayout(readHierarchies()) === 'unified';
/** Where a user's container with no cgroup says it could make none, for a controller: its v1 hierarchy, or the one tree. */
const noCgroupIn = (controller: string): string => (unified ? '/sys/fs/cgroup' : `/sys/fs/cgroup/${controller}`);
let ids = 0;
const newId = (): string => `rl-${process.pid}-${++ids}`;
const shell = (script: string) => (c: { process?: { args?: string[] } }) => {
  c.process!.args = ['/bin/sh', '-c', script];
};

t.test('spec --rootless and run: root in a user namespace mapping it to the user, setgroups denied', async (t) => {
  const b = userBundle(t, user, shell('id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; exit 3'));
  t.same(b.config.linux?.uidMappings, [{ containerID: 0, hostID: user.uid, size: 1 }]);
  const r = tsrunAsUser(user, ['run', '-b', b.dir, newId()]);
  t.equal(r.status, 3, `the container's status (${r.stderr})`);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /^uid=0\(root\) gid=0\(root\)/);
  t.match(lines[1].trim().split(/\s+/), ['0', String(user.uid), '1']);
  t.match(lines[2].trim().split(/\s+/), ['0', String(user.gid), '1']);
  t.equal(lines[3], 'deny');
  t.same(userState(user), [], 'no state left in $XDG_RUNTIME_DIR/tsrun');
});

t.test('create, start, state, kill, delete as the user', async (t) => {
  const b = userBundle(t, user, shell('trap "exit 7" TERM; while :; do sleep 0.1; done'));
  const id = newId();
  const created = tsrunAsUser(user, ['create', '-b', b.dir, id]);
  t.equal(created.status, 0, created.stderr);
  const state = JSON.parse(tsrunAsUser(user, ['state', id]).stdout);
  t.equal(state.status, 'created');
  t.equal(fs.statSync(`/proc/${state.pid}`).uid, user.uid, 'the init is the user on the host');
  t.equal(tsrunAsUser(user, ['start', id]).status, 0);
  t.equal(JSON.parse(tsrunAsUser(user, ['state', id]).stdout).status, 'running');
  t.equal(tsrunAsUser(user, ['kill', id, 'TERM']).status, 0);
  t.ok(await waitFor(() => JSON.parse(tsrunAsUser(user, ['state', id]).stdout).status === 'stopped'), 'stopped');
  t.equal(tsrunAsUser(user, ['delete', id]).status, 0);
  t.same(userState(user), []);
});

t.test('without a cgroup of its own: ps, pause and events --stats say why; kill --all signals the init', async (t) => {
  const b = userBundle(t, user, shell('sleep 1000'));
  const id = newId();
  t.equal(tsrunAsUser(user, ['run', '-d', '-b', b.dir, id]).status, 0);
  t.teardown(() => tsrunAsUser(user, ['delete', '--force', id]));
  const state = JSON.parse(tsrunAsUser(user, ['state', id]).stdout);
  const saved = JSON.parse(fs.readFileSync(path.join(user.runtimeDir, 'tsrun', id, 'state.json'), 'utf8'));
  t.same(saved.cgroup.paths, {}, 'no cgroup recorded');
  t.equal(
    fs.readFileSync(`/proc/${state.pid}/cgroup`, 'utf8'),
    fs.readFileSync('/proc/self/cgroup', 'utf8'),
    "the init stays in its caller's cgroups",
  );
  const ps = tsrunAsUser(user, ['ps', id]);
  t.not(ps.status, 0);
  t.match(ps.stderr, /no cgroup/);
  const pause = tsrunAsUser(user, ['pause', id]);
  t.not(pause.status, 0);
  t.match(
    pause.stderr,
    new RegExp(
      `^tsrun: pause \\S+: pause: rootless: the container got no cgroup in the hierarchy at ${noCgroupIn('freezer')} when it was created: this user could make or join none there; an administrator may delegate one`,
      'm',
    ),
  );
  const stats = tsrunAsUser(user, ['events', '--stats', id]);
  t.not(stats.status, 0);
  t.match(stats.stderr, /no cgroup/);
  const update = tsrunAsUser(user, ['update', '--pids-limit', '10', id]);
  t.equal(update.status, 1);
  t.match(
    update.stderr,
    `linux.resources.pids: rootless: the container got no cgroup in the hierarchy at ${noCgroupIn('pids')} when it was created: this user could make or join none there;`,
  );
  const groups = tsrunAsUser(user, ['exec', '-g', '10', id, 'true']);
  t.equal(groups.status, 255);
  t.match(groups.stderr, /--additional-gids: setgroups is denied in the container's user namespace/);
  const kill = tsrunAsUser(user, ['kill', '--all', id, 'KILL']);
  t.equal(kill.status, 0, kill.stderr);
  t.match(kill.stderr, /warning: .*the signal goes to the init alone/);
  t.ok(await waitFor(() => !fs.existsSync(`/proc/${state.pid}`) || readState(state.pid) === 'Z'), 'the init died');
  t.equal(tsrunAsUser(user, ['delete', id]).status, 0);
  t.same(userState(user), []);
});

function readState(pid: number): string {
  try {
    return /State:\s+(\S)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

t.test('uid and gid ranges go through newuidmap and newgidmap; setgroups stays allowed', async (t) => {
  t.ok(user.subuid && user.subgid, 'useradd gave the user ranges');
  const b = userBundle(t, user, (c) => {
    mapRanges(c, user);
    c.process!.user = { uid: 1000, gid: 1000, additionalGids: [10, 20] };
    shell('id; cat /proc/self/uid_map /proc/self/setgroups; ls -ln /proc/1/status')(c);
  });
  const r = tsrunAsUser(user, ['run', '-b', b.dir, newId()]);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /^uid=1000\S* gid=1000\S* groups=10\b.*,20\b/, 'the additional gids set');
  t.match(lines[1].trim().split(/\s+/), ['0', String(user.uid), '1']);
  t.match(lines[2].trim().split(/\s+/), ['1', String(user.subuid), '65536']);
  t.equal(lines[3], 'allow');
  t.same(userState(user), []);
});

t.test('ranges without newuidmap on PATH: refused naming the tool, nothing left', async (t) => {
  const b = userBundle(t, user, (c) => {
    mapRanges(c, user);
    shell('sleep 1000')(c);
  });
  const id = newId();
  // /usr/sbin has runuser, not newuidmap (/usr/bin).
  const r = tsrunAsUser(user, ['run', '-b', b.dir, id], { env: { PATH: '/usr/sbin' } });
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    /^tsrun: run \S+: linux\.uidMappings: newuidmap is not on PATH \(\/usr\/sbin\): Debian's uidmap package installs it;.*\n$/,
  );
  t.same(userState(user), []);
  // Not even a zombie: the helper's mount-source server, orphaned when the helper was killed, is reaped.
  // (The inits earlier tests killed may still wait for this sandbox's PID 1 to reap them: not counted.)
  const left = spawnSync('ps', ['-o', 'pid,ppid,stat,comm', '--no-headers', '-u', user.name], { encoding: 'utf8' });
  t.same(
    left.stdout.split('\n').filter((l) => / tsrun-init$/.test(l)),
    [],
    'no helper of the user left',
  );
});

t.test("bind mounts of the user's own directories, and a read-only rootfs", async (t) => {
  const b = userBundle(t, user, shell('cat /data/in; echo out > /data/out; touch /x 2>&1; exit 0'));
  const data = path.join(b.dir, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'in'), 'hello\n');
  fs.chownSync(data, user.uid, user.gid);
  b.config.root!.readonly = true;
  b.config.mounts!.push({ destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] });
  writeUserConfig(b, user);
  const r = tsrunAsUser(user, ['run', '-b', b.dir, newId()]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^hello\n.*Read-only file system/s);
  t.equal(fs.readFileSync(path.join(data, 'out'), 'utf8'), 'out\n');
  t.equal(fs.statSync(path.join(data, 'out')).uid, user.uid, "written as the user's own on the host");
});

t.test('refused before anything is made, naming the field', async (t) => {
  const cases: Array<[string, (c: import('../../src/lib/config').Config) => void, RegExp]> = [
    [
      'no user namespace',
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'user');
        delete c.linux!.uidMappings;
        delete c.linux!.gidMappings;
      },
      /linux\.namespaces: this is uid \d+, not root: a container needs a user namespace of its own/,
    ],
    [
      'no uid map',
      (c) => {
        delete c.linux!.uidMappings;
      },
      /linux\.uidMappings: required when a user namespace is created/,
    ],
    [
      'a memory limit without a cgroup',
      (c) => {
        c.linux!.resources = { memory: { limit: 64 << 20 } };
      },
      /linux\.resources\.memory: rootless: this user may not make or join \/sys\/fs\/cgroup\/\S+; an administrator may delegate one/,
    ],
    [
      'a cgroupsPath the user may not use',
      (c) => {
        c.linux!.cgroupsPath = '/tsrun-rootless-test';
      },
      /linux\.cgroupsPath: this user may not make or join \/sys\/fs\/cgroup(\/\S+)?\/tsrun-rootless-test/,
    ],
    [
      'an unmapped gid in a mount option',
      (c) => {
        c.mounts!.find((m) => m.destination === '/dev/pts')!.options!.push('gid=5');
      },
      /mounts\[\d+\]\.options: gid=5: gid 5 is not mapped in linux\.gidMappings/,
    ],
    [
      'an id-mapped mount',
      (c) => {
        c.mounts!.push({
          destination: '/mnt',
          type: 'bind',
          source: '/tmp',
          options: ['bind'],
          uidMappings: [{ containerID: 0, hostID: user.uid, size: 1 }],
          gidMappings: [{ containerID: 0, hostID: user.gid, size: 1 }],
        });
      },
      /mounts\[\d+\]\.uidMappings: this is uid \d+, not root: an id-mapped mount needs root/,
    ],
    [
      'a host network interface',
      (c) => {
        c.linux!.namespaces!.push({ type: 'network' });
        c.linux!.netDevices = { eth9: {} };
      },
      /linux\.netDevices: not for a rootless container \(this is uid \d+\): moving a host interface needs root/,
    ],
    [
      'additional gids with setgroups denied',
      (c) => {
        c.process!.user = { uid: 0, gid: 0, additionalGids: [10] };
      },
      /process\.user\.additionalGids: a user's own gid map \(one gid\) denies setgroups/,
    ],
    [
      // Lowering it needs CAP_SYS_RESOURCE on the host, which a user has not got.
      "an oom_score_adj below the caller's",
      (c) => {
        c.process!.oomScoreAdj = -500;
      },
      /process\.oomScoreAdj: .*-500.*(permission denied|not permitted)/i,
    ],
    [
      // Raising a hard limit needs CAP_SYS_RESOURCE on the host too.
      "an rlimit above the caller's hard limit",
      (c) => {
        c.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 1 << 30 }];
      },
      /process\.rlimits\[0\]: set RLIMIT_NOFILE to 1024\/1073741824: /,
    ],
    [
      "a range outside the user's subordinate ids",
      (c) => {
        c.linux!.uidMappings = [
          { containerID: 0, hostID: user.uid, size: 1 },
          { containerID: 1, hostID: 1, size: 10 },
        ];
      },
      /linux\.uidMappings: newuidmap \d+ 0 \d+ 1 1 1 10 failed \(status 1\): .+/,
    ],
  ];
  for (const [name, mutate, error] of cases) {
    const b = userBundle(t, user, mutate);
    const id = newId();
    const r = tsrunAsUser(user, ['run', '-b', b.dir, id]);
    t.equal(r.status, 1, `${name}: fails`);
    t.match(r.stderr, error, name);
    t.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
    t.same(userState(user), [], `${name}: nothing left`);
  }
});

t.test('a user without subordinate ids: its own id works, a range is refused by newuidmap', async (t) => {
  const plain = makeTestUser(t, { subordinate: false });
  const own = userBundle(t, plain, shell('id -u'));
  const ok = tsrunAsUser(plain, ['run', '-b', own.dir, newId()]);
  t.equal(ok.status, 0, ok.stderr);
  t.equal(ok.stdout.trim(), '0');
  const ranged = userBundle(t, plain, (c) => {
    c.linux!.uidMappings = [
      { containerID: 0, hostID: plain.uid, size: 1 },
      { containerID: 1, hostID: 200000, size: 1000 },
    ];
  });
  const r = tsrunAsUser(plain, ['run', '-b', ranged.dir, newId()]);
  t.equal(r.status, 1);
  t.match(r.stderr, /^tsrun: run \S+: linux\.uidMappings: newuidmap .* failed/);
  t.same(userState(plain), []);
});

t.test('--root is $XDG_RUNTIME_DIR/tsrun for a user; --rootless takes true, false or auto', async (t) => {
  const b = userBundle(t, user, shell('sleep 1000'));
  const id = newId();
  t.equal(tsrunAsUser(user, ['create', '-b', b.dir, id]).status, 0);
  t.ok(fs.existsSync(path.join(user.runtimeDir, 'tsrun', id, 'state.json')));
  t.equal(
    fs.statSync(path.join(user.runtimeDir, 'tsrun')).mode & 0o7777,
    0o1700,
    "0700 and sticky, so XDG's clean-up keeps it (as runc's)",
  );
  t.match(tsrunAsUser(user, ['list', '-q']).stdout, id);
  t.equal(tsrunAsUser(user, ['delete', '--force', id]).status, 0);
  // $XDG_RUNTIME_DIR somewhere shared, where someone else made tsrun/ first: not taken as the user's state.
  const shared = fs.mkdtempSync('/tmp/tsrun-xdg-shared-');
  t.teardown(() => fs.rmSync(shared, { recursive: true, force: true }));
  fs.chmodSync(shared, 0o1777);
  fs.mkdirSync(path.join(shared, 'tsrun'), { mode: 0o777 });
  fs.chmodSync(path.join(shared, 'tsrun'), 0o777);
  const squatted = tsrunAsUser(user, ['create', '-b', b.dir, newId()], { env: { XDG_RUNTIME_DIR: shared } });
  t.equal(squatted.status, 1);
  t.match(
    squatted.stderr,
    `--root ${shared}/tsrun (the default in $XDG_RUNTIME_DIR): owned by uid 0, not this user's (uid ${user.uid}); check $XDG_RUNTIME_DIR\n`,
  );
  t.same(fs.readdirSync(path.join(shared, 'tsrun')), [], 'nothing made there');
  // Nor is state planted there read, by any verb.
  const listed = tsrunAsUser(user, ['list'], { env: { XDG_RUNTIME_DIR: shared } });
  t.equal(listed.status, 1);
  t.match(listed.stderr, /\(the default in \$XDG_RUNTIME_DIR\): owned by uid 0, not this user's/);
  // A user's systemd manager: test/integration/rootless-systemd, in the systemd VMs.
  if (!fs.existsSync('/run/systemd/system')) {
    const systemd = tsrunAsUser(user, ['--systemd-cgroup', 'run', '-b', b.dir, newId()]);
    t.equal(systemd.status, 1);
    t.match(systemd.stderr, /--systemd-cgroup: systemd is not the init of this host/);
  }
  const bad = tsrunAsUser(user, ['--rootless', 'maybe', 'list']);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /--rootless: must be true, false or auto, not "maybe"/);
  // --rootless false: cgroups as for root, which this user may not make.
  const strict = tsrunAsUser(user, ['--rootless', 'false', 'run', '-b', b.dir, newId()]);
  t.equal(strict.status, 1);
  t.match(strict.stderr, /\/sys\/fs\/cgroup\/\S+: permission denied/);
  t.same(userState(user), []);
});

// cgroup v1 (this host): a delegated cgroup in one hierarchy.  cgroup v2 (the VM): a delegated subtree, below.
if (!unified)
  t.test(
    'a cgroup root delegated in one hierarchy: the container gets its own there, and the limits it can hold',
    async (t) => {
      // As an administrator delegates: a directory the user owns, with the files that move tasks in.
      const delegated = `/sys/fs/cgroup/pids/tsrun-rootless-${process.pid}`;
      fs.mkdirSync(delegated);
      t.teardown(() => fs.rmdirSync(delegated));
      for (const entry of ['', 'tasks', 'cgroup.procs']) fs.chownSync(path.join(delegated, entry), user.uid, user.gid);
      const inDelegated = (args: string[]) =>
        asUser(user, ['/bin/sh', '-c', `echo $$ > ${delegated}/cgroup.procs && exec "$0" "$@"`, TSRUN, ...args]);

      const id = newId();
      const b = userBundle(t, user, (c) => {
        c.linux!.resources = { pids: { limit: 20 } };
        shell('cat /sys/fs/cgroup/pids/pids.max; grep :pids: /proc/self/cgroup')(c);
      });
      const r = inDelegated(['run', '-b', b.dir, id]);
      t.equal(r.status, 0, r.stderr);
      t.equal(
        r.stdout,
        `20\n${pidsHierarchyId()}:pids:/tsrun-rootless-${process.pid}/${id}\n`,
        'its own pids cgroup, bound at the cgroup mount',
      );
      t.notOk(fs.existsSync(path.join(delegated, id)), 'removed at delete');

      // A running one: pids updated there; what needs a hierarchy not delegated names it.
      const running = userBundle(t, user, (c) => {
        c.linux!.resources = { pids: { limit: 20 } };
        shell('sleep 1000')(c);
      });
      const live = newId();
      t.equal(inDelegated(['run', '-d', '-b', running.dir, live]).status, 0);
      t.teardown(() => tsrunAsUser(user, ['delete', '--force', live]));
      t.equal(tsrunAsUser(user, ['update', '--pids-limit', '30', live]).status, 0);
      t.equal(fs.readFileSync(path.join(delegated, live, 'pids.max'), 'utf8'), '30\n');
      const pause = tsrunAsUser(user, ['pause', live]);
      t.match(
        pause.stderr,
        /pause: rootless: the container got no cgroup in the hierarchy at \/sys\/fs\/cgroup\/freezer when it was created/,
      );
      const memoryUpdate = tsrunAsUser(user, ['update', '--memory', '64m', live]);
      t.match(
        memoryUpdate.stderr,
        /linux\.resources\.memory\S*: rootless: the container got no cgroup in the hierarchy at \/sys\/fs\/cgroup\/memory when it was created/,
      );
      t.equal(tsrunAsUser(user, ['delete', '--force', live]).status, 0);
      t.notOk(fs.existsSync(path.join(delegated, live)), 'removed at delete --force');

      const memory = userBundle(t, user, (c) => {
        c.linux!.resources = { pids: { limit: 20 }, memory: { limit: 64 << 20 } };
      });
      const refused = inDelegated(['run', '-b', memory.dir, newId()]);
      t.equal(refused.status, 1);
      t.match(
        refused.stderr,
        /linux\.resources\.memory\S*: rootless: this user may not make or join \/sys\/fs\/cgroup\/memory\//,
      );
      t.same(
        fs
          .readdirSync(delegated, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name),
        [],
        'nothing left in the delegated cgroup',
      );
      t.same(userState(user), []);
    },
  );

/** rmdir a cgroup tree, deepest first, once the processes in it are gone. */
function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  for (let i = 0; i < 200; i++) {
    try {
      return fs.rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25); // a dying process leaves it soon
    }
  }
  fs.rmdirSync(dir);
}

if (unified)
  t.test(
    "a delegated cgroup v2 subtree, as systemd delegates a user's: the container's cgroup is a sibling of the session's, with its limits",
    async (t) => {
      // Root's part: controllers enabled down to a directory the user owns, with the files that move processes,
      // and the user's session in a leaf of it (a cgroup with processes enables none for its children).
      const top = `/sys/fs/cgroup/tsrun-rl-${process.pid}`;
      fs.mkdirSync(top);
      t.teardown(() => removeCgroupTree(top));
      for (const dir of ['/sys/fs/cgroup', top])
        fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+memory +pids +cpu');
      const delegated = path.join(top, 'user');
      fs.mkdirSync(delegated);
      for (const entry of ['', 'cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'])
        fs.chownSync(path.join(delegated, entry), user.uid, user.gid);
      const session = path.join(delegated, 'session');
      t.equal(asUser(user, ['mkdir', session]).status, 0, 'the user makes its session cgroup');
      const inSession = (args: string[]) => tsrunAsUser(user, args, { cgroup: session });
      const containerDir = (id: string) => path.join(delegated, id);

      const id = newId();
      const b = userBundle(t, user, (c) => {
        // No cgroup namespace: the cgroup mount binds the init's cgroup (a user may not mount the host's).
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
        c.linux!.resources = { memory: { limit: 64 << 20 }, pids: { limit: 20 }, cpu: { shares: 512 } };
        shell('grep ^0:: /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max')(c);
      });
      const r = inSession(['run', '-b', b.dir, id]);
      t.equal(r.status, 0, r.stderr);
      t.equal(
        r.stdout,
        `0::/tsrun-rl-${process.pid}/user/${id}\n${64 << 20}\n20\n`,
        "below the session's parent, as runc's fs2 places it; its limits at the cgroup mount (no cgroup namespace)",
      );
      t.notOk(fs.existsSync(containerDir(id)), 'removed at delete');

      // A running one: update, pause, ps, events --stats, exec, kill --all, delete.
      const running = userBundle(t, user, (c) => {
        c.linux!.resources = { pids: { limit: 20 } };
        shell('sleep 1000 & exec sleep 1000')(c);
      });
      const live = newId();
      t.equal(inSession(['run', '-d', '-b', running.dir, live]).status, 0);
      t.teardown(() => tsrunAsUser(user, ['delete', '--force', live]));
      const init = JSON.parse(tsrunAsUser(user, ['state', live]).stdout).pid;
      t.equal(fs.readFileSync(`/proc/${init}/cgroup`, 'utf8'), `0::/tsrun-rl-${process.pid}/user/${live}\n`);
      t.equal(tsrunAsUser(user, ['update', '--pids-limit', '30', '--memory', '32m', live]).status, 0);
      t.equal(fs.readFileSync(path.join(containerDir(live), 'pids.max'), 'utf8'), '30\n');
      t.equal(fs.readFileSync(path.join(containerDir(live), 'memory.max'), 'utf8'), `${32 << 20}\n`);
      t.equal(tsrunAsUser(user, ['pause', live]).status, 0);
      t.equal(JSON.parse(tsrunAsUser(user, ['state', live]).stdout).status, 'paused');
      t.equal(fs.readFileSync(path.join(containerDir(live), 'cgroup.freeze'), 'utf8'), '1\n');
      t.equal(tsrunAsUser(user, ['resume', live]).status, 0);
      const ps = tsrunAsUser(user, ['ps', '--format', 'json', live]);
      t.equal(ps.status, 0, ps.stderr);
      t.equal(JSON.parse(ps.stdout).length, 2, 'ps: the init and the sleep it started');
      const stats = tsrunAsUser(user, ['events', '--stats', live]);
      t.equal(stats.status, 0, stats.stderr);
      t.equal(JSON.parse(stats.stdout).data.pids.current, 2);
      // In the container's cgroup namespace, its cgroup is "/".
      const exec = inSession(['exec', live, 'grep', '^0::', '/proc/self/cgroup']);
      t.equal(exec.stdout, '0::/\n', "an exec joins the container's cgroup");
      // From outside the subtree the user may not move it there: it stays in its caller's, with a warning
      // (runc's says nothing).
      differsOnPurpose(t, 'rootless-exec-outside-cgroup');
      const outside = tsrunAsUser(user, ['exec', live, 'grep', '^0::', '/proc/self/cgroup']);
      t.equal(outside.status, 0, outside.stderr);
      t.equal(outside.stdout, '0::/../../..\n', "outside the container's cgroup: in its caller's, the root");
      t.match(
        outside.stderr,
        `warning: rootless: this user may not move the process into ${containerDir(live)} from the cgroup tsrun runs in`,
      );
      t.equal(tsrunAsUser(user, ['kill', '--all', live, 'KILL']).status, 0);
      t.ok(await waitFor(() => fs.readFileSync(path.join(containerDir(live), 'cgroup.procs'), 'utf8') === ''));
      t.equal(tsrunAsUser(user, ['delete', live]).status, 0);
      t.notOk(fs.existsSync(containerDir(live)), 'removed at delete');

      // Outside the subtree (runuser from root's cgroup): moving a process needs the common ancestor's
      // cgroup.procs, which is root's.  A cgroupsPath there is refused before anything is made.
      const named = userBundle(t, user, (c) => {
        c.linux!.cgroupsPath = `/tsrun-rl-${process.pid}/user/named`;
      });
      const refused = tsrunAsUser(user, ['run', '-b', named.dir, newId()]);
      t.equal(refused.status, 1);
      t.match(
        refused.stderr,
        `linux.cgroupsPath: this user may not make or join ${delegated}/named; delegate it to this user (chown it), or leave cgroupsPath out`,
      );
      t.same(
        fs
          .readdirSync(delegated, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name),
        ['session'],
        'nothing left in the delegated subtree',
      );
      t.same(userState(user), []);
    },
  );

t.test('exec as the user: into the namespaces, as root or another mapped user, with its exit status', async (t) => {
  const b = userBundle(t, user, (c) => {
    mapRanges(c, user);
    shell('sleep 1000')(c);
  });
  const id = newId();
  t.equal(tsrunAsUser(user, ['run', '-d', '-b', b.dir, id]).status, 0);
  t.teardown(() => tsrunAsUser(user, ['delete', '--force', id]));
  const init = JSON.parse(tsrunAsUser(user, ['state', id]).stdout).pid as number;
  const inside = tsrunAsUser(user, ['exec', id, '/bin/sh', '-c', 'id -u; readlink /proc/self/ns/user; exit 4']);
  t.equal(inside.status, 4, inside.stderr);
  const [uid, ns] = inside.stdout.trim().split('\n');
  t.equal(uid, '0');
  t.equal(ns, fs.readlinkSync(`/proc/${init}/ns/user`), "the container's user namespace");
  const other = tsrunAsUser(user, [
    'exec',
    '--user',
    '1000:1000',
    '--env',
    'X=y',
    id,
    '/bin/sh',
    '-c',
    'id -u; echo $X',
  ]);
  t.equal(other.status, 0, other.stderr);
  t.equal(other.stdout, '1000\ny\n');
  t.equal(tsrunAsUser(user, ['delete', '--force', id]).status, 0);
  t.same(userState(user), []);
});

t.test('a terminal through --console-socket, and hooks, run as the user', async (t) => {
  const hookOut = path.join(user.runtimeDir, 'hook.out');
  const b = userBundle(t, user, (c) => {
    c.process!.terminal = true;
    c.process!.args = ['/bin/sh', '-c', 'tty; id -u'];
    // A runtime hook runs on the host, as the user that ran tsrun.
    c.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `id -u > ${hookOut}`] }] };
  });
  const socketPath = path.join(user.runtimeDir, 'console.sock');
  const listener = native.listenUnix(socketPath);
  t.teardown(() => native.close(listener));
  fs.chownSync(socketPath, user.uid, user.gid);
  const id = newId();
  const created = tsrunAsUser(user, ['create', '-b', b.dir, '--console-socket', socketPath, id]);
  t.equal(created.status, 0, created.stderr);
  const conn = native.acceptUnix(listener, 5_000);
  const master = native.recvFd(conn, 5_000);
  native.close(conn);
  t.equal(tsrunAsUser(user, ['start', id]).status, 0);
  const output = drainPty(master).split(/\r?\n/);
  fs.closeSync(master);
  t.match(output[0], /^\/dev\/pts\/\d+$/, 'the process runs on the pty');
  t.equal(output[1], '0');
  t.equal(fs.readFileSync(hookOut, 'utf8'), `${user.uid}\n`, 'the hook ran as the user');
  t.ok(await waitFor(() => JSON.parse(tsrunAsUser(user, ['state', id]).stdout).status === 'stopped'));
  t.equal(tsrunAsUser(user, ['delete', id]).status, 0);
  t.same(userState(user), []);
});

/** The pids hierarchy's number in /proc/self/cgroup (it differs from host to host). */
function pidsHierarchyId(): string {
  return /^(\d+):pids:/m.exec(fs.readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '?';
}

t.test('root with --rootless true: the device rules still apply (only a refusal is forgiven)', async (t) => {
  // A node outside the rules, bound in (no mknod needed): opening it shows whether a rule is loaded,
  // on v1 (devices.list) and v2 (a device filter) alike.
  const bundle = makeBundle(t, (c) => {
    c.process!.args = ['sleep', '1000'];
    c.mounts!.push({ destination: '/kmsg', type: 'bind', source: '/dev/kmsg', options: ['bind'] });
  });
  const id = newId();
  t.teardown(() => tsrun(bundle.root, ['delete', '--force', id]));
  const r = tsrun(bundle.root, ['--rootless', 'true', 'run', '-d', '-b', bundle.dir, id]);
  t.equal(r.status, 0, r.stderr);
  // runc refuses a host interface to --rootless true as to a user.
  const netdev = makeBundle(t, (c) => {
    c.linux!.netDevices = { eth9: {} };
  });
  const refused = tsrun(netdev.root, ['--rootless', 'true', 'run', '-b', netdev.dir, newId()]);
  t.equal(refused.status, 1);
  t.match(refused.stderr, /linux\.netDevices: not for a rootless container \(--rootless true\)/);
  const open = tsrun(bundle.root, ['exec', id, 'sh', '-c', '(exec 3>/kmsg) && echo opened || echo refused']);
  t.equal(open.stdout, 'refused\n', 'a node no rule allows cannot be opened');
  t.match(open.stderr, /Operation not permitted/);
  const state = JSON.parse(tsrun(bundle.root, ['state', id]).stdout);
  const devicesLine = /^\d+:devices:(.*)$/m.exec(fs.readFileSync(`/proc/${state.pid}/cgroup`, 'utf8'));
  if (devicesLine) {
    const list = fs.readFileSync(path.join('/sys/fs/cgroup/devices', devicesLine[1], 'devices.list'), 'utf8');
    t.notMatch(list, /^a \*:\* rwm$/m, 'not the allow-all a cgroup starts with');
    t.match(list, /^c 1:3 rwm$/m, "runc's defaults");
  }
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
});
