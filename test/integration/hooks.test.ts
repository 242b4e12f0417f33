/**
 * Hook tests: every hook is a small shell script that appends one line to a
 * shared log: its stage name, the state JSON it read on stdin, its own
 * environment, and what the state's pid was executing at the time.  The log
 * is a host directory that is also bind-mounted into the container, so the
 * hooks that run inside (startContainer) write to the same file.
 *
 * Needs root.
 */
import t from 'tap';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Config, type Hook } from '../../src/lib/config';
import {
  type Bundle,
  IS_ROOT,
  type RunResult,
  TSRUN,
  cleanupContainer,
  leftovers,
  makeBundle,
  uniqueId,
  waitFor,
  writeConfig,
} from '../helpers';

type Json = any;

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const HOOK_ENV = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'HOOK_MARK=hooked', 'SPACED=a b'];

/*
 * $1 stage, $2 log file, $3 exit status, $4 seconds to sleep before logging.  One line: stage TAB state TAB env
 * (|-separated) TAB what the state's pid is executing.  The env is this
 * shell's own, as exec'd; its pid comes from /proc/self read by a builtin,
 * because a createContainer hook runs in the container's pid namespace while
 * still seeing the host's /proc (so $$ is not its pid there).
 */
const LOG_HOOK = `#!/bin/sh
state=$(cat)
[ -n "$4" ] && sleep "$4"
read -r self_stat < /proc/self/stat
env_list=$(tr '\\000' '|' < /proc/\${self_stat%% *}/environ)
pid=$(printf '%s' "$state" | sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p')
exe=$(readlink /proc/$pid/exe 2>/dev/null)
printf '%s\\t%s\\t%s\\t%s\\n' "$1" "$state" "$env_list" "$exe" >> "$2"
exit \${3:-0}
`;

/* Logs like LOG_HOOK, writes its pid to $3, then sleeps past any timeout. */
const SLOW_HOOK = `#!/bin/sh
echo $$ > "$3"
printf '%s\\t{}\\t\\t\\n' "$1" >> "$2"
exec sleep 10
`;

interface Entry {
  stage: string;
  state: Json;
  env: string[];
  exe: string;
}

interface HookBundle extends Bundle {
  /** The log as the host sees it. */
  log: string;
  /** The log file's path inside the container. */
  logInside: string;
  /** A hook in the runtime namespace (or reachable before pivot_root) that logs `stage`. */
  hostHook(stage: string, exitCode?: number): Hook;
  /** A hook whose path resolves inside the rootfs. */
  rootfsHook(stage: string, delaySeconds?: number): Hook;
}

function hookBundle(t: tap.Test, args: string[], mutate: (c: Config, b: HookBundle) => void): HookBundle {
  const base = makeBundle(t, () => {}, args);
  const logDir = path.join(base.dir, 'hooklog');
  fs.mkdirSync(logDir);
  const log = path.join(logDir, 'log');
  fs.writeFileSync(log, '');
  const script = path.join(base.dir, 'hook.sh');
  fs.writeFileSync(script, LOG_HOOK, { mode: 0o755 });
  fs.writeFileSync(path.join(base.dir, 'slow.sh'), SLOW_HOOK, { mode: 0o755 });
  fs.mkdirSync(path.join(base.rootfs, 'hooks'));
  fs.writeFileSync(path.join(base.rootfs, 'hooks', 'hook.sh'), LOG_HOOK, { mode: 0o755 });
  const b: HookBundle = {
    ...base,
    log,
    logInside: '/hooklog/log',
    hostHook: (stage, exitCode = 0) => ({
      path: script,
      args: ['hook.sh', stage, log, String(exitCode)],
      env: HOOK_ENV,
    }),
    rootfsHook: (stage, delaySeconds) => ({
      path: '/hooks/hook.sh',
      args: ['hook.sh', stage, '/hooklog/log', '0', ...(delaySeconds ? [String(delaySeconds)] : [])],
      env: HOOK_ENV,
    }),
  };
  b.config.mounts!.push({ destination: '/hooklog', type: 'bind', source: logDir, options: ['bind'] });
  b.config.annotations = { 'org.example.hooks': 'yes' };
  mutate(b.config, b);
  writeConfig(b.dir, b.config);
  return b;
}

function readLog(b: HookBundle): Entry[] {
  return fs
    .readFileSync(b.log, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [stage, state, env, exe] = line.split('\t');
      let parsed: Json;
      try {
        parsed = JSON.parse(state);
      } catch {
        parsed = { unparsable: state };
      }
      return { stage, state: parsed, env: env ? env.split('|').filter((e) => e !== '') : [], exe: exe ?? '' };
    });
}

const stages = (b: HookBundle): string[] => readLog(b).map((e) => e.stage);

/**
 * Run tsrun through `env -i` with the environment minus the test runner's.
 * Under tap, NODE_OPTIONS loads tap's process-info hook into every Node
 * process, tsrun included, and that hook adds _TAPJS_* and NODE_OPTIONS to
 * every child (hooks too); it also patches this process's spawnSync, so
 * passing a clean `env` is not enough.
 */
function envArgs(): string[] {
  return Object.entries(process.env)
    .filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_'))
    .map(([k, v]) => `${k}=${v}`);
}

/** `tsrun --root ROOT ARGS` with a clean env. */
function tsrun(root: string, args: string[]): RunResult {
  const r = spawnSync('/usr/bin/env', ['-i', ...envArgs(), TSRUN, '--root', root, ...args], {
    encoding: 'utf8',
    input: '',
    timeout: 30_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Spawn tsrun with stdio on files: `create` leaves an init holding its stdio open. */
function tsrunFiles(root: string, args: string[]): RunResult & { ms: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-out-'));
  const out = fs.openSync(path.join(dir, 'out'), 'w+');
  const err = fs.openSync(path.join(dir, 'err'), 'w+');
  const started = Date.now();
  try {
    const r = spawnSync('/usr/bin/env', ['-i', ...envArgs(), TSRUN, '--root', root, ...args], {
      stdio: ['ignore', out, err],
      timeout: 30_000,
    });
    return {
      status: r.status,
      signal: r.signal,
      stdout: fs.readFileSync(path.join(dir, 'out'), 'utf8'),
      stderr: fs.readFileSync(path.join(dir, 'err'), 'utf8'),
      ms: Date.now() - started,
    };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function create(t: tap.Test, b: Bundle): { id: string; result: RunResult & { ms: number } } {
  const id = uniqueId('hook');
  cleanupContainer(t, b.root, id);
  return { id, result: tsrunFiles(b.root, ['create', '-b', b.dir, id]) };
}

// ---------------------------------------------------------------- the full lifecycle

const SIX = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

t.test('hooks: all six run, with the state on stdin and only their own env', async (t) => {
  const b = hookBundle(t, ['/bin/checker', 'sleep', '30'], (c, hb) => {
    c.hooks = {
      prestart: [hb.hostHook('prestart')],
      createRuntime: [hb.hostHook('createRuntime')],
      createContainer: [hb.hostHook('createContainer')],
      startContainer: [hb.rootfsHook('startContainer')],
      poststart: [hb.hostHook('poststart')],
      poststop: [hb.hostHook('poststop')],
    };
  });
  const { id, result: created } = create(t, b);
  t.equal(created.status, 0, `create exits 0 (${created.stderr.trim()})`);
  t.same(
    stages(b),
    ['prestart', 'createRuntime', 'createContainer'],
    'create runs prestart, createRuntime, createContainer in order',
  );
  const hostPid = JSON.parse(tsrun(b.root, ['state', id]).stdout || '{}').pid as number;
  t.ok(hostPid > 0, 'the container has an init pid');

  const started = tsrun(b.root, ['start', id]);
  t.equal(started.status, 0, `start exits 0 (${started.stderr.trim()})`);
  // The relative order of startContainer and poststart is the next test's subject.
  t.ok(await waitFor(() => stages(b).length >= 5), 'start runs startContainer and poststart');
  t.same(stages(b).slice(3).sort(), ['poststart', 'startContainer'], 'start runs startContainer and poststart');

  const deleted = tsrun(b.root, ['delete', '--force', id]);
  t.equal(deleted.status, 0, `delete exits 0 (${deleted.stderr.trim()})`);
  t.same(leftovers(b, id), [], 'nothing is left behind after delete');
  const log = readLog(b);
  t.same(log.map((e) => e.stage).sort(), [...SIX].sort(), 'each hook ran once');
  t.equal(log[log.length - 1]?.stage, 'poststop', 'delete runs poststop last');

  const byStage = new Map(log.map((e) => [e.stage, e]));
  for (const e of log) {
    t.match(
      e.state,
      { ociVersion: String, id, bundle: b.dir, status: String },
      `${e.stage}: state has ociVersion, id, bundle, status`,
    );
    t.same(e.env, HOOK_ENV, `${e.stage}: env is exactly the configured env`);
    if (e.state.annotations !== undefined)
      t.same(e.state.annotations, { 'org.example.hooks': 'yes' }, `${e.stage}: annotations`);
  }
  const status = (s: string): string | undefined => byStage.get(s)?.state.status;
  const pid = (s: string): number | undefined => byStage.get(s)?.state.pid;
  t.equal(status('prestart'), 'creating', 'prestart: status creating');
  t.equal(status('createRuntime'), 'creating', 'createRuntime: status creating');
  t.equal(status('createContainer'), 'creating', 'createContainer: status creating');
  t.equal(
    status('startContainer'),
    'created',
    'startContainer: status created (create has finished, the program has not run)',
  );
  t.equal(status('poststart'), 'running', 'poststart: status running');
  t.equal(status('poststop'), 'stopped', 'poststop: status stopped');
  t.equal(pid('prestart'), hostPid, 'prestart (runtime namespace): pid as the runtime sees it');
  t.equal(pid('createRuntime'), hostPid, 'createRuntime (runtime namespace): pid as the runtime sees it');
  t.equal(pid('poststart'), hostPid, 'poststart (runtime namespace): pid as the runtime sees it');
  t.equal(
    pid('createContainer'),
    1,
    'createContainer (container namespace, own pid namespace): pid as the container sees it',
  );
  t.equal(
    pid('startContainer'),
    1,
    'startContainer (container namespace, own pid namespace): pid as the container sees it',
  );
});

t.test("hooks: start runs poststart only after startContainer and the program's exec", async (t) => {
  // startContainer takes a second; start must not run poststart (or return) before the program runs.
  const b = hookBundle(t, ['/bin/checker', 'sleep', '30'], (c, hb) => {
    c.hooks = {
      prestart: [hb.hostHook('prestart')],
      createRuntime: [hb.hostHook('createRuntime')],
      createContainer: [hb.hostHook('createContainer')],
      startContainer: [hb.rootfsHook('startContainer', 1)],
      poststart: [hb.hostHook('poststart')],
      poststop: [hb.hostHook('poststop')],
    };
  });
  const { id, result: created } = create(t, b);
  t.equal(created.status, 0, `create exits 0 (${created.stderr.trim()})`);
  const started = tsrun(b.root, ['start', id]);
  t.equal(started.status, 0, `start exits 0 (${started.stderr.trim()})`);
  t.same(
    stages(b),
    SIX.slice(0, 5),
    'when start returns: prestart, createRuntime, createContainer, startContainer, poststart',
  );
  const poststartExe = readLog(b).find((e) => e.stage === 'poststart')?.exe ?? '';
  t.match(
    poststartExe,
    /\/bin\/checker$/,
    `poststart runs after the program was executed (its pid was running ${poststartExe})`,
  );
  const deleted = tsrun(b.root, ['delete', '--force', id]);
  t.equal(deleted.status, 0, `delete exits 0 (${deleted.stderr.trim()})`);
  t.same(leftovers(b, id), [], 'nothing is left behind after delete');
  t.equal(stages(b)[stages(b).length - 1], 'poststop', 'delete runs poststop last');
});

t.test('hooks: createContainer runs in the container namespaces before pivot_root', async (t) => {
  // The hook's host path resolves (it runs before pivot_root) but its mount namespace is the container's.
  const b = hookBundle(t, ['/bin/checker', 'sleep', '30'], (c, hb) => {
    const probe = path.join(hb.dir, 'ns.sh');
    fs.writeFileSync(
      probe,
      `#!/bin/sh\nreadlink /proc/self/ns/mnt /proc/self/ns/uts /proc/self/ns/pid > ${path.join(hb.dir, 'hooklog', 'ns')}\n`,
      { mode: 0o755 },
    );
    c.hooks = { createContainer: [{ path: probe }] };
  });
  const { id, result } = create(t, b);
  t.equal(result.status, 0, `create exits 0 (${result.stderr.trim()})`);
  const hostPid = JSON.parse(tsrun(b.root, ['state', id]).stdout || '{}').pid as number;
  const seen = fs
    .readFileSync(path.join(b.dir, 'hooklog', 'ns'), 'utf8')
    .trim()
    .split('\n');
  const container = ['mnt', 'uts', 'pid'].map((ns) => fs.readlinkSync(`/proc/${hostPid}/ns/${ns}`));
  t.same(seen, container, "the hook ran in the container's mount, uts and pid namespaces");
  const deleted = tsrun(b.root, ['delete', '--force', id]);
  t.equal(deleted.status, 0);
  t.same(leftovers(b, id), [], 'nothing is left behind after delete');
});

// ---------------------------------------------------------------- timeouts

for (const stage of ['createRuntime', 'createContainer'] as const) {
  t.test(`hooks: a ${stage} hook that outlives its timeout fails create and leaves nothing`, async (t) => {
    const pidFile = path.join(os.tmpdir(), `tsrun-slow-${process.pid}-${stage}`);
    t.teardown(() => fs.rmSync(pidFile, { force: true }));
    const b = hookBundle(t, ['/bin/checker'], (c, hb) => {
      c.hooks = {
        [stage]: [{ path: path.join(hb.dir, 'slow.sh'), args: ['slow.sh', stage, hb.log, pidFile], timeout: 1 }],
        poststop: [hb.hostHook('poststop')],
      };
    });
    const { id, result } = create(t, b);
    t.not(result.status, 0, 'create fails');
    t.match(result.stderr, stage, `the error names the hook stage (${result.stderr.trim()})`);
    t.match(result.stderr, 'slow.sh', 'the error names the hook path');
    t.match(result.stderr, /time/i, 'the error says it timed out');
    t.ok(result.ms < 8000, `create gave up after the timeout, not after the hook's 10 s (${result.ms} ms)`);
    t.same(leftovers(b, id), [], 'nothing is left behind');
    t.same(stages(b), [stage, 'poststop'], 'the hook started, and poststop ran after the failure');
    if (stage === 'createRuntime') {
      const hookPid = Number(fs.readFileSync(pidFile, 'utf8'));
      const alive =
        fs.existsSync(`/proc/${hookPid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${hookPid}/stat`, 'utf8'));
      t.notOk(alive, 'the timed-out hook was killed');
      if (alive) process.kill(hookPid, 'SIGKILL');
    }
  });
}

// ---------------------------------------------------------------- failing hooks

for (const stage of ['prestart', 'createRuntime', 'createContainer'] as const) {
  t.test(`hooks: a failing ${stage} hook fails create, leaves nothing, and poststop still runs`, async (t) => {
    const b = hookBundle(t, ['/bin/checker'], (c, hb) => {
      c.hooks = {
        prestart: [hb.hostHook('prestart', stage === 'prestart' ? 3 : 0)],
        createRuntime: [hb.hostHook('createRuntime', stage === 'createRuntime' ? 3 : 0)],
        createContainer: [hb.hostHook('createContainer', stage === 'createContainer' ? 3 : 0)],
        startContainer: [hb.rootfsHook('startContainer')],
        poststart: [hb.hostHook('poststart')],
        poststop: [hb.hostHook('poststop')],
      };
    });
    const { id, result } = create(t, b);
    t.not(result.status, 0, 'create fails');
    t.match(result.stderr, stage, `the error names the hook stage (${result.stderr.trim()})`);
    t.match(result.stderr, 'hook.sh', 'the error names the hook path');
    t.same(leftovers(b, id), [], 'nothing is left behind');
    const order = ['prestart', 'createRuntime', 'createContainer'];
    t.same(
      stages(b),
      [...order.slice(0, order.indexOf(stage) + 1), 'poststop'],
      'hooks after the failing one do not run; poststop does',
    );
    const poststop = readLog(b).find((e) => e.stage === 'poststop');
    t.equal(poststop?.state.status, 'stopped', 'poststop sees a stopped container');
    t.equal(poststop?.state.id, id);
    const again = tsrun(b.root, ['state', id]);
    t.not(again.status, 0, 'the container does not exist');
  });
}

t.test('hooks: a failing poststop hook only warns; delete succeeds and later poststop hooks run', async (t) => {
  const b = hookBundle(t, ['/bin/checker'], (c, hb) => {
    c.hooks = {
      poststop: [hb.hostHook('poststop-1', 3), hb.hostHook('poststop-2')],
    };
  });
  const { id, result } = create(t, b);
  t.equal(result.status, 0, `create exits 0 (${result.stderr.trim()})`);
  const deleted = tsrun(b.root, ['delete', id]);
  t.equal(deleted.status, 0, 'delete exits 0');
  t.match(deleted.stderr, /poststop/, `a warning names the failed poststop hook (${deleted.stderr.trim()})`);
  t.same(stages(b), ['poststop-1', 'poststop-2'], 'the second poststop hook still ran');
  t.same(leftovers(b, id), [], 'nothing is left behind');
  t.not(tsrun(b.root, ['state', id]).status, 0, 'the container is gone');
});

t.test(
  'hooks: a failing startContainer hook fails start even when a reaper takes the init before start looks',
  async (t) => {
    const b = makeBundle(
      t,
      (c) => {
        c.hooks = { startContainer: [{ path: '/bin/false' }] };
      },
      ['/bin/true'],
    );
    const id = uniqueId('hookreaped');
    cleanupContainer(t, b.root, id);
    // Once create exits, its init passes to the nearest subreaper: here a
    // shell that is pid 1 of a pid namespace of its own.  dash waits for
    // start with waitpid(-1), so it reaps the init the moment it dies, as an
    // engine's subreaper (conmon, containerd's shim) would.
    const script = `${TSRUN} --root ${b.root} create -b ${b.dir} ${id} || exit 9; ${TSRUN} --root ${b.root} start ${id}; echo "start=$?"; ${TSRUN} --root ${b.root} delete --force ${id}`;
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount', '--mount-proc', '/bin/sh', '-c', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.match(r.stdout, /start=1\n/, `start fails: ${r.stderr.trim()}`);
    t.match(r.stderr, /exited before its program started/, 'and says why');
    spawnSync(TSRUN, ['--root', b.root, 'delete', '--force', id]);
    t.same(leftovers(b, id), []);
  },
);

t.test('hooks: a hook run by the helper gets its stdio and no other fd of tsrun', async (t) => {
  const b = makeBundle(
    t,
    (c) => {
      c.root!.readonly = false;
      c.hooks = {
        createContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'ls /proc/self/fd > rootfs-hookfds-create'] }],
        startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'ls /proc/self/fd > /hookfds-start'] }],
      };
    },
    ['/bin/cat', '/hookfds-start'],
  );
  const id = uniqueId('hookfds');
  cleanupContainer(t, b.root, id);
  const r = spawnSync(TSRUN, ['--root', b.root, 'run', '-b', b.dir, id], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: b.dir,
  });
  t.equal(r.status, 0, r.stderr);
  // ls's own directory fd is the 3.
  t.equal(r.stdout, '0\n1\n2\n3\n', "startContainer: 0-2 (and ls's own)");
  t.equal(
    fs.readFileSync(path.join(b.rootfs, 'rootfs-hookfds-create'), 'utf8'),
    '0\n1\n2\n3\n',
    'createContainer: the same',
  );
});
