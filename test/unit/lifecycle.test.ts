/**
 * create's and launch's failure paths, without root, through the fake
 * platform (test/fake-platform.ts): a scripted helper fails at each step
 * of the protocol, and each time everything create made is taken back
 * (state directory, cgroups, processes, sync socket, lock), a failed hook
 * still runs poststop, a refused clone is retried, and each crash step
 * finds the state it promises (crash.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BuiltPlugins, Test as BareTest } from '@tapjs/test';
import t from 'tap';

type Test = BareTest & BuiltPlugins;
import { type Config } from '../../src/lib/config';
import { create, type CreateOptions, prepareBundle } from '../../src/lib/container';
import { exec } from '../../src/lib/exec';
import { launch } from '../../src/lib/launch';
import { processStartTime } from '../../src/lib/state';
import { StateStore } from '../../src/lib/state';
import { Sync } from '../../src/lib/sync';
import { FakePlatform, type HelperScript, helperSays, parentSends } from '../fake-platform';
import { baseConfig } from '../fixtures';

const EAGAIN = os.constants.errno.EAGAIN;
const INIT = 4242;

interface Scene {
  store: StateStore;
  dir: string;
  bundle: string;
  opts: CreateOptions;
  platform: FakePlatform;
}

function scene(t: Test, scripts: HelperScript[], mutate: (c: Config) => void = () => {}): Scene {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-lifecycle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bundle = path.join(dir, 'bundle');
  fs.mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
  const config = baseConfig();
  mutate(config);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
  const store = new StateStore(path.join(dir, 'root'));
  const opts: CreateOptions = { id: 'c1', bundle, preserveFds: 0, noPivot: false, noNewKeyring: true };
  const platform = new FakePlatform(scripts);
  platform.stateDir = store.dir('c1');
  return { store, dir, bundle, opts, platform };
}

function run(s: Scene): ReturnType<typeof create> {
  return create(s.store, s.opts, prepareBundle(s.store, s.opts), s.platform);
}

/** The whole protocol of a container without hooks, user namespace or rlimits. */
const HAPPY: HelperScript = [
  parentSends(Sync.CONTINUE),
  helperSays.initPid(INIT),
  parentSends(Sync.CONTINUE),
  helperSays.ready(),
];

/** The fds this process has open: a failed create or exec must not add any. */
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

/** What a failed create must leave: nothing. */
function nothingLeft(t: Test, s: Scene, initStarted: boolean, fdsBefore: number): void {
  const p = s.platform;
  t.equal(openFds(), fdsBefore, 'no fd is left open (lock, exec fifo, console)');
  t.notOk(fs.existsSync(s.store.dir('c1')), 'the state directory is gone');
  t.ok(
    p.cgroupsMade.every((c) => !c.created || c.destroyed),
    'the cgroups made are removed',
  );
  t.same([...p.openFds], [], 'every sync socket is closed');
  t.same(p.protocolErrors, [], 'the parent kept to the protocol');
  if (initStarted) {
    t.ok(p.killed.includes(INIT), 'the init is killed');
    t.ok(p.reaped.includes(INIT), 'and reaped');
  }
  for (const h of p.started.keys()) t.ok(p.reaped.includes(1000 + h), `helper ${1000 + h} is reaped`);
  if (p.orphans.length) t.ok(p.adoptedOrphans, 'a subreaper, so they are ours');
  for (const o of p.orphans)
    t.ok(
      p.killed.includes(o) && p.reaped.includes(o),
      `the helper's fork ${o}, ours once it died, is killed and reaped`,
    );
  t.notOk(s.store.lockHeld('c1'), 'the lock is let go');
}

t.test('a create that goes through: recorded, committed, nothing undone', async (t) => {
  const s = scene(t, [HAPPY]);
  const pidFile = path.join(s.dir, 'pid');
  s.opts.pidFile = pidFile;
  const record = run(s);
  t.equal(record.pid, INIT);
  t.equal(
    JSON.parse(fs.readFileSync(path.join(s.store.dir('c1'), 'state.json'), 'utf8')).pid,
    INIT,
    'state.json has the pid',
  );
  t.equal(fs.readFileSync(pidFile, 'utf8'), String(INIT), 'the pid file too');
  const cgroup = s.platform.cgroupsMade[0];
  t.ok(cgroup.created && !cgroup.destroyed, 'the cgroups stay');
  t.same(s.platform.killed, [], 'nothing killed');
  t.same(s.platform.reaped, [1000], 'the helper is reaped when it reports the init');
  t.same([...s.platform.openFds], [], 'the sync socket is closed');
  t.equal(s.platform.started[0].fifoFd >= 0, true, 'the exec fifo went to the helper');
  t.same(s.platform.protocolErrors, []);
  t.equal(s.platform.unusedSteps(), 0, 'the whole script ran');
  t.notOk(s.store.lockHeld('c1'), 'the lock is let go');
});

t.test('every failing step undoes exactly what was made', async (t) => {
  const cases: Array<{
    name: string;
    scripts: HelperScript[];
    mutate?: (c: Config) => void;
    setup?: (s: Scene) => void;
    error: RegExp;
    initStarted: boolean;
  }> = [
    {
      name: 'the helper cannot start',
      scripts: [],
      setup: (s) => (s.platform.failSpawn = Object.assign(new Error('spawn tsrun-init: no memory'), { errno: 12 })),
      error: /spawn tsrun-init: no memory/,
      initStarted: false,
    },
    {
      name: 'the cgroups cannot be made',
      scripts: [],
      setup: (s) => (s.platform.failCgroupCreate = new Error('mkdir /sys/fs/cgroup/x: read-only file system')),
      error: /read-only file system/,
      initStarted: false,
    },
    {
      name: 'the exec fifo cannot be made',
      scripts: [],
      setup: (s) => (s.platform.failFifo = new Error('/run/tsrun/c1/exec.fifo: no space left on device')),
      error: /exec\.fifo: no space left on device/,
      initStarted: false,
    },
    {
      name: 'the helper fails before the init exists',
      scripts: [[parentSends(Sync.CONTINUE), helperSays.error('setns', 2, 'join namespace /x')]],
      error: /join namespace \/x: errno 2/,
      initStarted: false,
    },
    {
      name: "a mount source fails: the helper's mount-source server outlives it",
      scripts: [[parentSends(Sync.CONTINUE), helperSays.error('mount', 2, 'open /nonexistent')]],
      setup: (s) => (s.platform.orphans = [1500]),
      error: /open \/nonexistent: errno 2/,
      initStarted: false,
    },
    {
      name: 'the helper exits without a word',
      scripts: [[parentSends(Sync.CONTINUE)]],
      error: /exited before it was ready/,
      initStarted: false,
    },
    {
      name: 'a mount fails in the init',
      scripts: [
        [
          parentSends(Sync.CONTINUE),
          helperSays.initPid(INIT),
          parentSends(Sync.CONTINUE),
          helperSays.error('mount', 19),
        ],
      ],
      error: /mount failed: errno 19/,
      initStarted: true,
    },
    {
      name: 'the init dies before it is ready',
      scripts: [[parentSends(Sync.CONTINUE), helperSays.initPid(INIT), parentSends(Sync.CONTINUE)]],
      error: /exited before it was ready/,
      initStarted: true,
    },
    {
      name: 'the uid map cannot be written',
      scripts: [[parentSends(Sync.CONTINUE), helperSays.usernsReady(999)]],
      mutate: (c) => {
        c.linux!.namespaces!.push({ type: 'user' });
        c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      },
      setup: (s) => (s.platform.failProcWrite = Object.assign(new Error('EPERM'), { code: 'EPERM' })),
      error: /uid_map/,
      initStarted: false,
    },
    {
      name: 'an rlimit is refused',
      scripts: [
        [parentSends(Sync.CONTINUE), helperSays.initPid(INIT), parentSends(Sync.CONTINUE), helperSays.setRlimits()],
      ],
      mutate: (c) => (c.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 10 }]),
      setup: (s) => (s.platform.failPrlimit = Object.assign(new Error('EPERM'), { errno: 1 })),
      error: /process\.rlimits\[0\]: set RLIMIT_NOFILE to 10\/10: errno 1/,
      initStarted: true,
    },
    {
      name: 'the pid file cannot be written, after the init is ready',
      scripts: [HAPPY],
      setup: (s) => (s.opts.pidFile = path.join(s.dir, 'no', 'such', 'dir', 'pid')),
      error: /pid file/,
      initStarted: true,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const s = scene(t, c.scripts, c.mutate);
      c.setup?.(s);
      const fds = openFds();
      t.throws(() => run(s), c.error);
      nothingLeft(t, s, c.initStarted, fds);
    });
  }
});

t.test(
  'undo runs newest first: the init is killed before its cgroups go, and the state directory goes last',
  async (t) => {
    const s = scene(t, [HAPPY]);
    s.opts.pidFile = path.join(s.dir, 'no', 'such', 'dir', 'pid');
    let stateAtCgroupRemoval: boolean | undefined;
    const cgroups = s.platform.cgroups.forConfig;
    s.platform.cgroups.forConfig = (config, id, choice) => {
      const cgroup = cgroups(config, id, choice);
      const destroy = cgroup.destroy.bind(cgroup);
      cgroup.destroy = () => {
        stateAtCgroupRemoval = fs.existsSync(s.store.dir('c1'));
        destroy();
      };
      return cgroup;
    };
    t.throws(() => run(s), /pid file/);
    t.same(s.platform.timeline, [
      'create the cgroup',
      'reap 1000',
      `kill ${INIT}`,
      `reap ${INIT}`,
      'remove the cgroup',
    ]);
    t.equal(stateAtCgroupRemoval, true, 'the state directory (naming the cgroups) outlives them');
    t.notOk(fs.existsSync(s.store.dir('c1')), 'and then goes');
  },
);

t.test('a failing hook ends the lifecycle with poststop; another failure does not', async (t) => {
  const withHooks = (failing: 'prestart' | 'createRuntime', marker: string) => (c: Config) => {
    c.hooks = {
      [failing]: [{ path: '/bin/sh', args: ['sh', '-c', 'exit 3'] }],
      poststop: [{ path: '/bin/sh', args: ['sh', '-c', `cat > ${marker}`] }],
    };
  };
  for (const failing of ['prestart', 'createRuntime'] as const) {
    await t.test(failing, async (t) => {
      const marker = path.join(os.tmpdir(), `tsrun-poststop-${process.pid}-${failing}`);
      t.teardown(() => fs.rmSync(marker, { force: true }));
      const s = scene(
        t,
        [[parentSends(Sync.CONTINUE), helperSays.initPid(INIT), parentSends(Sync.CONTINUE), helperSays.runHooks()]],
        withHooks(failing, marker),
      );
      const fds = openFds();
      t.throws(() => run(s), new RegExp(`${failing} hook`));
      nothingLeft(t, s, true, fds);
      t.ok(fs.existsSync(marker), 'poststop ran');
      t.match(JSON.parse(fs.readFileSync(marker, 'utf8')), { id: 'c1', status: 'stopped' }, 'with the stopped state');
    });
  }
  await t.test('a mount failure runs no poststop', async (t) => {
    const marker = path.join(os.tmpdir(), `tsrun-poststop-${process.pid}-mount`);
    t.teardown(() => fs.rmSync(marker, { force: true }));
    const s = scene(
      t,
      [
        [
          parentSends(Sync.CONTINUE),
          helperSays.initPid(INIT),
          parentSends(Sync.CONTINUE),
          helperSays.error('mount', 2),
        ],
      ],
      withHooks('prestart', marker),
    );
    t.throws(() => run(s), /mount failed/);
    t.notOk(fs.existsSync(marker), 'no poststop');
  });
});

t.test('a clone refused for now (EAGAIN) is tried again from a new helper, then given up', async (t) => {
  const refused: HelperScript = [parentSends(Sync.CONTINUE), helperSays.error('clone', EAGAIN, 'clone the init')];
  await t.test('it goes through on the fourth try', async (t) => {
    const s = scene(t, [refused, refused, refused, HAPPY]);
    t.equal(run(s).pid, INIT);
    t.equal(s.platform.started.length, 4, 'four helpers');
    t.same(s.platform.slept, [2, 4, 8], 'waiting 2, 4, 8 ms between them');
    t.same([...s.platform.openFds], [], 'each sync socket closed');
    t.same(s.platform.reaped, [1000, 1001, 1002, 1003], 'each helper reaped');
  });
  await t.test('ten refusals are an error, and nothing is left', async (t) => {
    const s = scene(
      t,
      Array.from({ length: 10 }, () => refused),
    );
    const fds = openFds();
    t.throws(() => run(s), /clone the init: errno \d+/);
    t.equal(s.platform.started.length, 10);
    t.same(s.platform.slept, [2, 4, 8, 16, 32, 64, 128, 256, 512]);
    nothingLeft(t, s, false, fds);
  });
  await t.test('any other failure is not retried', async (t) => {
    const s = scene(t, [[parentSends(Sync.CONTINUE), helperSays.error('clone', os.constants.errno.ENOMEM)]]);
    t.throws(() => run(s), /clone failed/);
    t.equal(s.platform.started.length, 1);
  });
});

t.test('each crash step finds what crash.ts promises in state.json', async (t) => {
  const s = scene(
    t,
    [
      [
        parentSends(Sync.CONTINUE),
        helperSays.initPid(INIT),
        parentSends(Sync.CONTINUE),
        helperSays.runHooks(),
        parentSends(Sync.HOOKS_DONE),
        helperSays.ready(),
      ],
    ],
    (c) => (c.hooks = { prestart: [{ path: '/bin/true' }] }),
  );
  run(s);
  const seen = s.platform.crashes.map((c) => [c.step, c.dirExists, c.state?.pid ?? null]);
  t.same(seen, [
    ['create:claimed', true, null], // the directory is the claim; nothing recorded yet
    ['create:recorded', true, 0], // recorded before anything is made, with pid 0
    ['create:rootfs', true, 0],
    ['create:cgroups', true, 0],
    ['create:cloned', true, 0],
    ['create:mounted', true, 0],
    ['create:launched', true, 0],
    ['create:saved', true, INIT], // the pid once the init is ready
  ]);
  const recorded = s.platform.crashes.find((c) => c.step === 'create:recorded')!;
  t.same(
    recorded.state?.cgroup,
    { driver: 'v2', paths: { '/fake/cgroup': '/fake/cgroup/c1' } },
    'naming the cgroups, for delete --force',
  );
  t.same(
    JSON.parse(s.platform.sent.find((m) => m.type === Sync.HOOKS_DONE)!.payload!.split('\0')[0]),
    {
      ociVersion: '1.3.0',
      id: 'c1',
      pid: INIT,
      status: 'creating',
      bundle: s.bundle,
      rootfs: path.join(s.bundle, 'rootfs'),
      created: JSON.parse(fs.readFileSync(path.join(s.store.dir('c1'), 'state.json'), 'utf8')).created,
      owner: 'root',
    },
    "the container's hooks get the state as the container sees it",
  );
});

t.test('launch alone: a seccomp listener nobody takes is an error, and the fd is closed', async (t) => {
  const platform = new FakePlatform([
    [
      parentSends(Sync.CONTINUE),
      helperSays.initPid(INIT),
      parentSends(Sync.CONTINUE),
      { say: { type: Sync.SECCOMP_LISTENER, fd: 77 } },
    ],
  ]);
  t.throws(
    () =>
      launch(
        {
          verb: 'exec',
          plan: Buffer.alloc(0),
          fifoFd: -1,
          consoleFd: -1,
          preserveFds: 0,
          cgroup: null,
          describeFailure: (f) => f.detail,
        },
        platform,
      ),
    /a listener fd arrived, but nothing takes it/,
  );
  t.same([...platform.openFds], [], 'the sync socket is closed');
  t.ok(platform.killed.includes(INIT) && platform.reaped.includes(INIT), 'the process is killed and reaped');
});

/** A running container for exec: created through the fake, its init then played by this test process. */
function runningContainer(t: Test, scripts: HelperScript[]): Scene {
  const s = scene(t, [HAPPY, ...scripts]);
  const record = run(s);
  record.pid = process.pid;
  record.initStartTime = processStartTime(process.pid) ?? '';
  s.store.save(record);
  fs.rmSync(s.store.fifoPath('c1'), { force: true }); // started
  return s;
}

const execOpts = (extra: Partial<Parameters<typeof exec>[1]> = {}): Parameters<typeof exec>[1] => ({
  id: 'c1',
  process: { cwd: '/', args: ['/bin/true'], user: { uid: 0, gid: 0 } },
  detach: true,
  preserveFds: 0,
  ignorePaused: false,
  ...extra,
});

t.test('exec: the lock is let go once the process is placed, and a failure leaves nothing', async (t) => {
  await t.test('through to READY', async (t) => {
    let lockedWhilePlacing: boolean | undefined;
    let lockedAfterPlacing: boolean | undefined;
    const s = runningContainer(t, [
      [
        { meanwhile: () => (lockedWhilePlacing = s.store.lockHeld('c1')) },
        parentSends(Sync.CONTINUE),
        helperSays.initPid(INIT + 1),
        { meanwhile: () => (lockedAfterPlacing = s.store.lockHeld('c1')) },
        parentSends(Sync.CONTINUE),
        helperSays.ready(),
      ],
    ]);
    const pidFile = path.join(s.dir, 'exec.pid');
    t.equal(await exec(s.store, execOpts({ pidFile }), s.platform), 0);
    t.equal(lockedWhilePlacing, true, 'locked while the process joins the cgroups');
    t.equal(lockedAfterPlacing, false, 'free once it is in them: the container may stop it now');
    t.equal(fs.readFileSync(pidFile, 'utf8'), String(INIT + 1));
    t.same([...s.platform.openFds], []);
    t.same(s.platform.protocolErrors, []);
  });
  await t.test('a failure in the container', async (t) => {
    const s = runningContainer(t, [
      [
        parentSends(Sync.CONTINUE),
        helperSays.initPid(INIT + 1),
        parentSends(Sync.CONTINUE),
        helperSays.error('user', 1, 'setgroups'),
      ],
    ]);
    await t.rejects(exec(s.store, execOpts(), s.platform), /setgroups: errno 1/);
    t.ok(
      s.platform.killed.includes(INIT + 1) && s.platform.reaped.includes(INIT + 1),
      'its process is killed and reaped',
    );
    t.same([...s.platform.openFds], [], 'the sync socket is closed');
    t.notOk(s.store.lockHeld('c1'), 'the lock is let go');
    t.ok(fs.existsSync(path.join(s.store.dir('c1'), 'state.json')), 'the container stays');
    t.notOk(s.platform.cgroupsMade[0].destroyed, 'and so do its cgroups');
  });
  await t.test('a stopped container is refused before any helper starts', async (t) => {
    const s = runningContainer(t, []);
    const record = s.store.load('c1');
    record.initStartTime = 'not this process';
    s.store.save(record);
    await t.rejects(exec(s.store, execOpts(), s.platform), /cannot exec in a stopped container/);
    t.equal(s.platform.started.length, 1, 'only the create started one');
  });
});
