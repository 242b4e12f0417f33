/**
 * Integration tests of the container lifecycle through the real CLI:
 * create / start / state / kill / delete, run (attached, detached, --keep),
 * wrong-state operations, stdio and fd passing, list, spec, features and
 * concurrent deletes.  Every test that makes a container checks that nothing
 * of it is left (state dir, mounts, processes).
 */
import t from 'tap';
import { spawn, spawnSync, type StdioOptions } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  alive,
  bundleProcesses,
  type Bundle,
  IS_ROOT,
  type RunResult,
  TSRUN,
  type TestLike,
  cleanupContainer,
  leftovers,
  makeBundle,
  tempDir,
  tsrun,
  uniqueId,
  waitFor,
  writeConfig,
} from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

/**
 * Run tsrun with stdout/stderr going to files instead of pipes.  `create` and
 * `run --detach` hand their stdio to the container, whose process outlives
 * tsrun: spawnSync on pipes would wait for the container, not for tsrun.
 */
function tsrunFiles(
  t: TestLike,
  root: string,
  args: string[],
  extraFds: number[] = [],
  opts: { cwd?: string; timeoutMs?: number } = {},
): RunResult & { outPath: string } {
  const dir = tempDir(t, 'tsrun-out-');
  const outPath = path.join(dir, 'stdout');
  const errPath = path.join(dir, 'stderr');
  const outFd = fs.openSync(outPath, 'w');
  const errFd = fs.openSync(errPath, 'w');
  try {
    const r = spawnSync(TSRUN, ['--root', root, ...args], {
      stdio: ['ignore', outFd, errFd, ...extraFds],
      timeout: opts.timeoutMs ?? 30_000,
      cwd: opts.cwd,
    });
    return {
      status: r.status,
      signal: r.signal,
      stdout: fs.readFileSync(outPath, 'utf8'),
      stderr: fs.readFileSync(errPath, 'utf8'),
      outPath,
    };
  } finally {
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
}

interface AsyncRun {
  pid: number;
  stdout: () => string;
  stderr: () => string;
  done: Promise<RunResult>;
  child: ReturnType<typeof spawn>;
}

/** Start tsrun without waiting; it is killed at teardown if still alive. */
function tsrunAsync(
  t: TestLike,
  root: string,
  args: string[],
  opts: { stdio?: StdioOptions; input?: string } = {},
): AsyncRun {
  const child = spawn(TSRUN, ['--root', root, ...args], { stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  if (child.stdin) {
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  }
  const done = new Promise<RunResult>((resolve) => {
    child.on('close', (status, signal) => resolve({ status, signal, stdout: out, stderr: err }));
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done;
    }
  });
  return { pid: child.pid!, stdout: () => out, stderr: () => err, done, child };
}

function stateOf(root: string, id: string): any {
  const r = tsrun(root, ['state', id]);
  if (r.status !== 0) throw new Error(`state ${id} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function statusOf(root: string, id: string): string | null {
  const r = tsrun(root, ['state', id]);
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout).status;
}

/** Wait (cheaply, on /proc) for the init to die, then ask tsrun for the status. */
async function stoppedAfter(root: string, id: string, pid: number): Promise<boolean> {
  await waitFor(() => !alive(pid));
  return statusOf(root, id) === 'stopped';
}

/** Poll `tsrun state` (a node process per call) less eagerly than waitFor's default. */
async function reachesStatus(root: string, id: string, status: string): Promise<boolean> {
  return waitFor(() => statusOf(root, id) === status, 10_000, 100);
}

function oneErrorLine(t: any, r: RunResult, what: string): void {
  t.not(r.status, 0, `${what}: exit status is non-zero`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `${what}: exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
  t.match(lines[0] ?? '', /^tsrun: /, `${what}: stderr line starts with "tsrun: "`);
}

/** A container `id` of `bundle` in the created state (init waiting on the exec fifo). */
function createContainer(
  t: TestLike,
  bundle: Bundle,
  id: string,
  extra: string[] = [],
): RunResult & { outPath: string } {
  cleanupContainer(t, bundle.root, id);
  return tsrunFiles(t, bundle.root, ['create', '-b', bundle.dir, ...extra, id]);
}

function expectNothingLeft(t: any, bundle: Bundle, id: string): void {
  t.same(leftovers(bundle, id), [], 'nothing of the container is left');
  t.same(bundleProcesses(bundle), [], 'no process of the container is left');
}

t.test('create -> start -> kill -> delete, with state at each step', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('life');
  const pidFile = path.join(tempDir(t), 'init.pid');

  const c = createContainer(t, bundle, id, ['--pid-file', pidFile]);
  t.equal(c.status, 0, `create succeeds: ${c.stderr}`);
  t.equal(c.stderr, '', 'create prints nothing on stderr');
  t.ok(fs.existsSync(pidFile), 'pid file written before create returned');
  const pidText = fs.readFileSync(pidFile, 'utf8');
  t.match(pidText, /^\d+$/, 'pid file holds just a number');
  const pid = Number(pidText);

  const s1 = stateOf(bundle.root, id);
  t.equal(s1.status, 'created', 'state: created');
  t.equal(s1.pid, pid, 'state pid is the pid-file pid');
  t.equal(s1.id, id);
  t.equal(s1.bundle, bundle.dir, 'bundle is the absolute bundle path');
  t.equal(s1.ociVersion, '1.3.0');
  t.type(s1.created, 'string');
  t.ok(!Number.isNaN(Date.parse(s1.created)), 'created is a timestamp');
  t.type(s1.owner, 'string');
  t.ok(
    fs.readlinkSync(`/proc/${pid}/exe`).startsWith('/memfd:tsrun-init'),
    `the created init is still tsrun-init (${fs.readlinkSync(`/proc/${pid}/exe`)})`,
  );

  const st = tsrun(bundle.root, ['start', id]);
  t.equal(st.status, 0, `start succeeds: ${st.stderr}`);
  const s2 = stateOf(bundle.root, id);
  t.equal(s2.status, 'running', 'state: running');
  t.equal(s2.pid, pid, 'same pid while running');
  t.ok(
    await waitFor(() => !fs.readlinkSync(`/proc/${pid}/exe`).startsWith('/memfd:')),
    'after start the init has exec()ed the container process',
  );
  t.same(bundleProcesses(bundle), [pid], 'the leftover check sees the running container (and only its init)');

  const k = tsrun(bundle.root, ['kill', id, 'KILL']);
  t.equal(k.status, 0, `kill succeeds: ${k.stderr}`);
  t.ok(await stoppedAfter(bundle.root, id, pid), 'state: stopped after kill');
  const s3 = stateOf(bundle.root, id);
  t.equal(s3.status, 'stopped');

  const d = tsrun(bundle.root, ['delete', id]);
  t.equal(d.status, 0, `delete of a stopped container succeeds: ${d.stderr}`);
  const s4 = tsrun(bundle.root, ['state', id]);
  oneErrorLine(t, s4, 'state after delete');
  t.match(s4.stderr, id, 'the error names the id');
  expectNothingLeft(t, bundle, id);
});

t.test('kill with the default signal (SIGTERM) reaches a handler in the init', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'signals-wait']);
  const id = uniqueId('term');
  const c = createContainer(t, bundle, id);
  t.equal(c.status, 0, `create: ${c.stderr}`);
  t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start');
  // Wait until the checker (not tsrun-init) has its SIGTERM handler installed.
  const pid = stateOf(bundle.root, id).pid;
  t.ok(
    await waitFor(() => {
      try {
        if (fs.readlinkSync(`/proc/${pid}/exe`).startsWith('/memfd:')) return false;
        const line = fs
          .readFileSync(`/proc/${pid}/status`, 'utf8')
          .split('\n')
          .find((l) => l.startsWith('SigCgt:'));
        return !!line && (BigInt('0x' + line.split(/\s+/)[1]) & (1n << 14n)) !== 0n;
      } catch {
        return false;
      }
    }),
    'the checker has installed its SIGTERM handler',
  );
  const k = tsrun(bundle.root, ['kill', id]);
  t.equal(k.status, 0, `kill (default SIGTERM): ${k.stderr}`);
  t.ok(await stoppedAfter(bundle.root, id, pid), 'container stops on SIGTERM');
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
  expectNothingLeft(t, bundle, id);
});

t.test('kill: signal names and numbers, as runc accepts them', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'signals-wait']);
  const id = uniqueId('names');
  const c = createContainer(t, bundle, id);
  t.equal(c.status, 0, `create: ${c.stderr}`);
  t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start');
  const pid = stateOf(bundle.root, id).pid;
  // create gave the container its stdout: the file tsrunFiles made.
  const seen = (): string[] => fs.readFileSync(c.outPath, 'utf8').split('\n').filter(Boolean);
  t.ok(await waitFor(() => seen().includes('{"ready":true}')), 'container is ready');
  const sent: [string, number][] = [
    ['USR1', 10],
    ['SIGUSR2', 12],
    ['1', 1],
    ['sigint', 2],
    ['SIGTERM', 15],
  ];
  for (const [name, num] of sent) {
    const k = tsrun(bundle.root, ['kill', id, name]);
    t.equal(k.status, 0, `kill ${name}: ${k.stderr}`);
    t.ok(await waitFor(() => seen().includes(`{"signal":${num}}`)), `kill ${name} delivered signal ${num}`);
  }
  t.ok(await stoppedAfter(bundle.root, id, pid), 'stopped after SIGTERM');
  t.same(seen(), ['{"ready":true}', ...sent.map(([, n]) => `{"signal":${n}}`)], 'each signal exactly once');
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
  expectNothingLeft(t, bundle, id);
});

t.test('kill --all signals every process of the container', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', '/bin/checker sleep 30 & /bin/checker sleep 31 & wait']);
  const id = uniqueId('all');
  t.equal(createContainer(t, bundle, id).status, 0, 'create');
  t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start');
  const pid = stateOf(bundle.root, id).pid;
  t.ok(await waitFor(() => bundleProcesses(bundle).length >= 3), 'sh and two sleepers run');
  const pids = bundleProcesses(bundle);
  t.ok(pids.includes(pid), 'the init is among them');
  const k = tsrun(bundle.root, ['kill', '--all', id, 'KILL']);
  t.equal(k.status, 0, `kill --all: ${k.stderr}`);
  t.ok(await waitFor(() => pids.every((p) => !alive(p))), 'every process of the container is gone');
  t.ok(await stoppedAfter(bundle.root, id, pid), 'stopped');
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
  expectNothingLeft(t, bundle, id);
});

t.test('run: exit status of the container process', async (t) => {
  const bundle = makeBundle(t);
  for (const code of [0, 3, 255]) {
    bundle.config.process!.args = ['/bin/checker', 'exit', String(code)];
    writeConfig(bundle.dir, bundle.config);
    const id = uniqueId('exit');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.equal(r.status, code, `run of "exit ${code}" exits ${code}: ${r.stderr}`);
    t.equal(r.stderr, '', 'nothing on stderr');
    t.equal(tsrun(bundle.root, ['state', id]).status === 0, false, 'run without --keep deleted the container');
    expectNothingLeft(t, bundle, id);
  }
});

t.test('run: a container killed by a signal gives 128+N', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('sig');
  cleanupContainer(t, bundle.root, id);
  const r = tsrunAsync(t, bundle.root, ['run', '-b', bundle.dir, id]);
  t.ok(await reachesStatus(bundle.root, id, 'running'), 'container is running');
  const k = tsrun(bundle.root, ['kill', id, 'KILL']);
  t.equal(k.status, 0, `kill KILL: ${k.stderr}`);
  const res = await r.done;
  t.equal(res.status, 137, `run exits 137 (128+SIGKILL): ${res.stderr}`);
  t.equal(res.signal, null, 'tsrun itself exited normally');
  expectNothingLeft(t, bundle, id);
});

t.test('run: signals sent to tsrun are forwarded to the container', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'signals-wait']);
  const id = uniqueId('fwd');
  cleanupContainer(t, bundle.root, id);
  const r = tsrunAsync(t, bundle.root, ['run', '-b', bundle.dir, id]);
  t.ok(await waitFor(() => r.stdout().includes('{"ready":true}')), `container is ready: ${r.stdout()} ${r.stderr()}`);
  process.kill(r.pid, 'SIGUSR1');
  t.ok(await waitFor(() => r.stdout().includes('{"signal":10}')), 'SIGUSR1 reached the container');
  process.kill(r.pid, 'SIGHUP');
  t.ok(await waitFor(() => r.stdout().includes('{"signal":1}')), 'SIGHUP reached the container');
  process.kill(r.pid, 'SIGTERM');
  const res = await r.done;
  t.equal(res.status, 0, `run exits 0 after the container handled SIGTERM: ${res.stderr}`);
  t.same(
    res.stdout.trim().split('\n'),
    ['{"ready":true}', '{"signal":10}', '{"signal":1}', '{"signal":15}'],
    'each signal seen exactly once, in order',
  );
  t.equal(res.stderr, '', 'nothing on stderr (no inspector or warnings)');
  expectNothingLeft(t, bundle, id);
});

t.test('run --detach, state running, delete --force', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('det');
  cleanupContainer(t, bundle.root, id);
  const pidFile = path.join(tempDir(t), 'pid');
  const r = tsrunFiles(t, bundle.root, ['run', '--detach', '--pid-file', pidFile, '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run --detach succeeds: ${r.stderr}`);
  const s = stateOf(bundle.root, id);
  t.equal(s.status, 'running', 'state: running');
  t.equal(s.pid, Number(fs.readFileSync(pidFile, 'utf8')), 'pid file matches state');
  t.ok(alive(s.pid), 'init is alive');
  const d = tsrun(bundle.root, ['delete', '--force', id]);
  t.equal(d.status, 0, `delete --force: ${d.stderr}`);
  t.notOk(alive(s.pid), 'the container process is gone');
  t.not(tsrun(bundle.root, ['state', id]).status, 0, 'state fails after delete');
  expectNothingLeft(t, bundle, id);
});

t.test('run -d (short flag) works like --detach', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('det');
  cleanupContainer(t, bundle.root, id);
  const r = tsrunFiles(t, bundle.root, ['run', '-d', '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run -d: ${r.stderr}`);
  t.equal(statusOf(bundle.root, id), 'running');
  t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0, 'delete -f');
  expectNothingLeft(t, bundle, id);
});

t.test('run --keep leaves a stopped container that delete removes', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'exit', '5']);
  const id = uniqueId('keep');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '--keep', '-b', bundle.dir, id]);
  t.equal(r.status, 5, `run --keep returns the exit status: ${r.stderr}`);
  const s = stateOf(bundle.root, id);
  t.equal(s.status, 'stopped', 'state: stopped');
  t.equal(s.pid, 0, 'a stopped container reports pid 0');
  t.equal(s.id, id);
  const listed = JSON.parse(tsrun(bundle.root, ['list', '--format', 'json']).stdout);
  t.match(listed, [{ id, status: 'stopped', pid: 0 }], 'list shows it stopped');
  const d = tsrun(bundle.root, ['delete', id]);
  t.equal(d.status, 0, `delete: ${d.stderr}`);
  t.not(tsrun(bundle.root, ['state', id]).status, 0, 'gone after delete');
  expectNothingLeft(t, bundle, id);
});

t.test('wrong-state operations', async (t) => {
  t.test('start twice: the second fails', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
    const id = uniqueId('twice');
    t.equal(createContainer(t, bundle, id).status, 0, 'create');
    t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'first start');
    const again = tsrun(bundle.root, ['start', id]);
    oneErrorLine(t, again, 'second start');
    t.match(again.stderr, /running/, 'the error says the container is running');
    t.equal(statusOf(bundle.root, id), 'running', 'still running');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0, 'delete --force');
    expectNothingLeft(t, bundle, id);
  });

  t.test('start a stopped container fails', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'exit', '0']);
    const id = uniqueId('stopstart');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '--keep', '-b', bundle.dir, id]).status, 0, 'run --keep');
    const r = tsrun(bundle.root, ['start', id]);
    oneErrorLine(t, r, 'start of a stopped container');
    t.match(r.stderr, /stopped/, 'the error says stopped');
    t.equal(statusOf(bundle.root, id), 'stopped');
    t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
    expectNothingLeft(t, bundle, id);
  });

  t.test('start a created container whose init was killed fails', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
    const id = uniqueId('deadinit');
    t.equal(createContainer(t, bundle, id).status, 0, 'create');
    const pid = stateOf(bundle.root, id).pid;
    t.equal(tsrun(bundle.root, ['kill', id, 'KILL']).status, 0, 'kill KILL of a created container');
    t.ok(await stoppedAfter(bundle.root, id, pid), 'stopped');
    const r = tsrun(bundle.root, ['start', id]);
    oneErrorLine(t, r, 'start after the init died');
    t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
    expectNothingLeft(t, bundle, id);
  });

  t.test('delete of a running container without --force fails and leaves it running', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
    const id = uniqueId('delrun');
    t.equal(createContainer(t, bundle, id).status, 0, 'create');
    t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start');
    const pid = stateOf(bundle.root, id).pid;
    const r = tsrun(bundle.root, ['delete', id]);
    oneErrorLine(t, r, 'delete without --force');
    t.match(r.stderr, /running/, 'the error says running');
    t.equal(statusOf(bundle.root, id), 'running', 'still running');
    t.ok(alive(pid), 'its process is alive');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0, 'delete --force');
    expectNothingLeft(t, bundle, id);
  });

  t.test('delete of a created container (no --force) succeeds, as in runc', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
    const id = uniqueId('delcreated');
    t.equal(createContainer(t, bundle, id).status, 0, 'create');
    const pid = stateOf(bundle.root, id).pid;
    const r = tsrun(bundle.root, ['delete', id]);
    t.equal(r.status, 0, `delete: ${r.stderr}`);
    t.notOk(alive(pid), 'the init is gone');
    expectNothingLeft(t, bundle, id);
  });

  t.test('kill of a stopped container fails', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'exit', '0']);
    const id = uniqueId('killstopped');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '--keep', '-b', bundle.dir, id]).status, 0, 'run --keep');
    const r = tsrun(bundle.root, ['kill', id, 'KILL']);
    oneErrorLine(t, r, 'kill of a stopped container');
    t.match(r.stderr, id, 'names the id');
    t.equal(statusOf(bundle.root, id), 'stopped');
    t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
    expectNothingLeft(t, bundle, id);
  });

  t.test('create with a duplicate id fails and the first container is untouched', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
    const other = makeBundle(t, () => {}, ['/bin/checker', 'exit', '0']);
    const id = uniqueId('dup');
    t.equal(createContainer(t, bundle, id).status, 0, 'first create');
    const before = stateOf(bundle.root, id);
    const pidFile = path.join(tempDir(t), 'dup.pid');
    const r = tsrunFiles(t, bundle.root, ['create', '-b', other.dir, '--pid-file', pidFile, id]);
    oneErrorLine(t, r, 'duplicate create');
    t.match(r.stderr, /exists/, 'the error says the id exists');
    t.notOk(fs.existsSync(pidFile), 'no pid file from the failed create');
    const after = stateOf(bundle.root, id);
    t.same(after, before, 'state of the first container is unchanged');
    t.ok(alive(before.pid), 'the first init is alive');
    t.same(
      leftovers({ ...other, root: path.join(other.dir, 'unused') }, id, { cgroups: false }),
      [],
      "nothing of the second bundle is left (that id's cgroups are the first container's)",
    );
    t.same(bundleProcesses(other), [], 'nothing of the second bundle runs');
    t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'the first container still starts');
    t.equal(statusOf(bundle.root, id), 'running');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0, 'delete --force');
    expectNothingLeft(t, bundle, id);
  });

  t.test('run with an id that is already created fails and does not touch it', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
    const id = uniqueId('duprun');
    t.equal(createContainer(t, bundle, id).status, 0, 'create');
    const before = stateOf(bundle.root, id);
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id], { timeoutMs: 20_000 });
    oneErrorLine(t, r, 'run with a duplicate id');
    t.same(stateOf(bundle.root, id), before, 'the existing container is unchanged (still created)');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0, 'delete --force');
    expectNothingLeft(t, bundle, id);
  });
});

t.test('stdin passes through to the container', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'echo-stdin']);
  const id = uniqueId('stdin');
  cleanupContainer(t, bundle.root, id);
  const input = 'hello\nworld\n' + 'x'.repeat(200_000) + '\nend\n';
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id], { input });
  t.equal(r.status, 0, `run: ${r.stderr}`);
  t.equal(r.stdout.length, input.length, 'all bytes came back');
  t.ok(r.stdout === input, 'stdout equals stdin');
  expectNothingLeft(t, bundle, id);
});

t.test("the container's stdout and stderr reach run's, and an empty stdin is EOF", async (t) => {
  const bundle = makeBundle(t, () => {}, [
    '/bin/sh',
    '-c',
    'echo to-out; echo to-err >&2; /bin/checker echo-stdin; echo done',
  ]);
  const id = uniqueId('stdio');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id], { input: '' });
  t.equal(r.status, 0, `run: ${r.stderr}`);
  t.equal(r.stdout, 'to-out\ndone\n', 'stdout');
  t.equal(r.stderr, 'to-err\n', 'stderr');
  expectNothingLeft(t, bundle, id);
});

t.test('--preserve-fds', async (t) => {
  const dir = tempDir(t);
  const extraPath = path.join(dir, 'extra-fd');
  fs.writeFileSync(extraPath, 'extra\n');

  t.test('--preserve-fds 1 passes fd 3 and nothing beyond', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'fds']);
    const id = uniqueId('pfds');
    cleanupContainer(t, bundle.root, id);
    const fd = fs.openSync(extraPath, 'r');
    t.teardown(() => fs.closeSync(fd));
    const r = tsrunAsync(t, bundle.root, ['run', '--preserve-fds', '1', '-b', bundle.dir, id], {
      stdio: ['pipe', 'pipe', 'pipe', fd],
    });
    const res = await r.done;
    t.equal(res.status, 0, `run: ${res.stderr}`);
    const fds = JSON.parse(res.stdout);
    t.same(Object.keys(fds).sort(), ['0', '1', '2', '3'], `fds 0-3 only: ${res.stdout}`);
    t.match(fds['3'], /extra-fd/, 'fd 3 is the file tsrun was given');
    expectNothingLeft(t, bundle, id);
  });

  t.test('--preserve-fds 1 through create/start', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', 'cat <&3 >/fd3-copy; /bin/checker fds > /fds.json']);
    const id = uniqueId('pfdsc');
    cleanupContainer(t, bundle.root, id);
    const fd = fs.openSync(extraPath, 'r');
    t.teardown(() => fs.closeSync(fd));
    const cr = tsrunFiles(t, bundle.root, ['create', '--preserve-fds', '1', '-b', bundle.dir, id], [fd]);
    t.equal(cr.status, 0, `create: ${cr.stderr}`);
    const pid = stateOf(bundle.root, id).pid;
    t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start');
    t.ok(await stoppedAfter(bundle.root, id, pid), 'container finished');
    t.equal(fs.readFileSync(path.join(bundle.rootfs, 'fd3-copy'), 'utf8'), 'extra\n', 'fd 3 read inside');
    const fds = JSON.parse(fs.readFileSync(path.join(bundle.rootfs, 'fds.json'), 'utf8'));
    t.same(Object.keys(fds).sort(), ['0', '1', '2', '3'], 'fds 0-3 only');
    t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
    expectNothingLeft(t, bundle, id);
  });

  t.test('without --preserve-fds only 0-2 are visible', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'fds']);
    const id = uniqueId('nofds');
    cleanupContainer(t, bundle.root, id);
    const fd3 = fs.openSync(extraPath, 'r');
    const fd4 = fs.openSync(extraPath, 'r');
    t.teardown(() => {
      fs.closeSync(fd3);
      fs.closeSync(fd4);
    });
    const r = tsrunAsync(t, bundle.root, ['run', '-b', bundle.dir, id], { stdio: ['pipe', 'pipe', 'pipe', fd3, fd4] });
    const res = await r.done;
    t.equal(res.status, 0, `run: ${res.stderr}`);
    const fds = JSON.parse(res.stdout);
    t.same(Object.keys(fds).sort(), ['0', '1', '2'], `fds 0-2 only: ${res.stdout}`);
    expectNothingLeft(t, bundle, id);
  });

  t.test('--preserve-fds must be a number', async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'fds']);
    const id = uniqueId('badfds');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['run', '--preserve-fds', 'x', '-b', bundle.dir, id]);
    oneErrorLine(t, r, '--preserve-fds x');
    t.match(r.stderr, /preserve-fds/);
    expectNothingLeft(t, bundle, id);
  });
});

t.test('list', async (t) => {
  const b1 = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const b2 = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const root = b1.root;
  const bundle2 = { ...b2, root };

  const empty = tsrun(root, ['list']);
  t.equal(empty.status, 0, `list with no containers: ${empty.stderr}`);
  t.same(empty.stdout.split('\n').filter(Boolean).length, 1, 'only the header');
  t.match(empty.stdout, /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER\s*$/m, 'header');

  const idA = uniqueId('listA');
  const idB = uniqueId('listB');
  t.equal(createContainer(t, b1, idA).status, 0, 'create A');
  t.equal(createContainer(t, bundle2, idB).status, 0, 'create B');
  t.equal(tsrun(root, ['start', idB]).status, 0, 'start B');
  const pidA = stateOf(root, idA).pid;
  const pidB = stateOf(root, idB).pid;

  const table = tsrun(root, ['list']);
  t.equal(table.status, 0, 'list (table)');
  const lines = table.stdout.split('\n').filter(Boolean);
  t.equal(lines.length, 3, `header and two rows:\n${table.stdout}`);
  t.match(lines[0], /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER$/, 'header');
  const rowA = lines.find((l) => l.startsWith(idA + ' '));
  const rowB = lines.find((l) => l.startsWith(idB + ' '));
  t.ok(rowA, 'row for A');
  t.ok(rowB, 'row for B');
  t.same(rowA?.split(/\s+/).slice(0, 4), [idA, String(pidA), 'created', b1.dir], 'A: id pid status bundle');
  t.same(rowB?.split(/\s+/).slice(0, 4), [idB, String(pidB), 'running', b2.dir], 'B: id pid status bundle');
  // columns line up under the header
  const statusCol = lines[0].indexOf('STATUS');
  t.equal(rowA?.indexOf('created'), statusCol, 'STATUS column aligned');

  const json = tsrun(root, ['list', '--format', 'json']);
  t.equal(json.status, 0, 'list --format json');
  const arr = JSON.parse(json.stdout);
  t.ok(Array.isArray(arr), 'a JSON array');
  t.equal(arr.length, 2);
  const a = arr.find((s: any) => s.id === idA);
  const b = arr.find((s: any) => s.id === idB);
  t.match(a, { id: idA, pid: pidA, status: 'created', bundle: b1.dir });
  t.match(b, { id: idB, pid: pidB, status: 'running', bundle: b2.dir });

  const q = tsrun(root, ['list', '-q']);
  t.equal(q.status, 0, 'list -q');
  t.same(q.stdout.split('\n').filter(Boolean).sort(), [idA, idB].sort(), 'ids only');
  t.equal(q.stdout.endsWith('\n'), true);

  const bad = tsrun(root, ['list', '--format', 'yaml']);
  oneErrorLine(t, bad, 'list --format yaml');

  t.equal(tsrun(root, ['delete', '--force', idA]).status, 0);
  t.equal(tsrun(root, ['delete', '--force', idB]).status, 0);
  const after = tsrun(root, ['list', '-q']);
  t.equal(after.stdout, '', 'list -q is empty after deleting both');
  expectNothingLeft(t, b1, idA);
  expectNothingLeft(t, bundle2, idB);
});

t.test('spec', async (t) => {
  const dir = tempDir(t);
  const r = tsrun(path.join(dir, 'state'), ['spec', '-b', dir]);
  t.equal(r.status, 0, `spec: ${r.stderr}`);
  const file = path.join(dir, 'config.json');
  const text = fs.readFileSync(file, 'utf8');
  const spec = JSON.parse(text);
  t.equal(spec.ociVersion, '1.3.0');
  t.type(spec.process, 'object');
  t.ok(Array.isArray(spec.process.args) && spec.process.args.length > 0, 'process.args');
  t.equal(spec.root.path, 'rootfs');
  t.same(spec.process.capabilities.inheritable ?? [], [], 'no inheritable capabilities');
  t.ok(spec.process.capabilities.bounding.length > 0, 'some bounding capabilities');
  const nsTypes = spec.linux.namespaces.map((n: any) => n.type);
  for (const ns of ['pid', 'network', 'ipc', 'uts', 'mount']) t.ok(nsTypes.includes(ns), `namespace ${ns}`);

  fs.writeFileSync(file, text.replace('"rootfs"', '"mine"'));
  const again = tsrun(path.join(dir, 'state'), ['spec', '-b', dir]);
  oneErrorLine(t, again, 'spec over an existing config.json');
  t.match(again.stderr, /config\.json/, 'names the file');
  t.match(fs.readFileSync(file, 'utf8'), /"mine"/, 'existing config.json untouched');

  // spec without -b writes into the current directory
  const cwd = tempDir(t);
  const here = tsrun(path.join(cwd, 'state'), ['spec'], { cwd });
  t.equal(here.status, 0, 'spec in cwd');
  t.ok(fs.existsSync(path.join(cwd, 'config.json')), 'config.json in cwd');
});

t.test('spec --rootless', async (t) => {
  for (const args of [['--rootless', '-b'], ['-b']]) {
    const rl = tempDir(t);
    const argv = ['spec', ...args, rl];
    if (args.length === 1) argv.push('--rootless');
    const r = tsrun(path.join(rl, 'state'), argv);
    t.equal(r.status, 0, `tsrun ${argv.join(' ')}: ${r.stderr}`);
    const file = path.join(rl, 'config.json');
    t.ok(fs.existsSync(file), 'config.json written');
    if (!fs.existsSync(file)) continue;
    const rs = JSON.parse(fs.readFileSync(file, 'utf8'));
    t.ok(
      rs.linux.namespaces.some((n: any) => n.type === 'user'),
      'rootless spec has a user namespace',
    );
    t.ok(Array.isArray(rs.linux.uidMappings) && rs.linux.uidMappings.length > 0, 'and uid mappings');
    t.notOk(
      rs.linux.namespaces.some((n: any) => n.type === 'network'),
      'and no network namespace (as runc)',
    );
  }
});

t.test('the default spec runs (with terminal off and the checker)', async (t) => {
  const bundle = makeBundle(t);
  fs.rmSync(path.join(bundle.dir, 'config.json'));
  t.equal(tsrun(bundle.root, ['spec', '-b', bundle.dir]).status, 0, 'spec');
  const cfg = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'config.json'), 'utf8'));
  cfg.process.terminal = false;
  cfg.process.args = ['/bin/checker'];
  fs.writeFileSync(path.join(bundle.dir, 'config.json'), JSON.stringify(cfg));
  const id = uniqueId('spec');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run: ${r.stderr}`);
  const report = JSON.parse(r.stdout);
  t.equal(report.pid, 1, 'pid 1 in its own pid namespace');
  t.equal(report.hostname, cfg.hostname, 'hostname from the spec');
  expectNothingLeft(t, bundle, id);
});

t.test('features', async (t) => {
  const dir = tempDir(t);
  const r = tsrun(path.join(dir, 'state'), ['features']);
  t.equal(r.status, 0, `features: ${r.stderr}`);
  const f = JSON.parse(r.stdout);
  t.equal(f.ociVersionMax, '1.3.0');
  t.type(f.ociVersionMin, 'string');
  t.ok(Array.isArray(f.linux?.namespaces), 'linux.namespaces is an array');
  for (const ns of ['pid', 'network', 'ipc', 'uts', 'mount', 'user'])
    t.ok(f.linux.namespaces.includes(ns), `namespace ${ns}`);
  t.ok(Array.isArray(f.hooks), 'hooks listed');
  t.ok(Array.isArray(f.mountOptions), 'mount options listed');
  t.same(
    f.linux.cgroup,
    { v1: true, v2: true, systemd: true, systemdUser: false, rdma: true },
    'cgroups: v1, v2, the systemd manager; not yet the systemd user manager',
  );
});

t.test('--version', async (t) => {
  const dir = tempDir(t);
  const r = tsrun(path.join(dir, 'state'), ['--version']);
  t.equal(r.status, 0);
  t.match(r.stdout, /^tsrun version \d+\.\d+\.\d+/m);
  t.match(r.stdout, /^spec: 1\.3\.0$/m);
});

t.test('relative --bundle and --pid-file are resolved against the cwd', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('rel');
  cleanupContainer(t, bundle.root, id);
  const cwd = path.dirname(bundle.dir);
  const pidName = `${path.basename(bundle.dir)}/rel.pid`;
  const c = tsrunFiles(t, bundle.root, ['create', '-b', path.basename(bundle.dir), '--pid-file', pidName, id], [], {
    cwd,
  });
  t.equal(c.status, 0, `create: ${c.stderr}`);
  const s = stateOf(bundle.root, id);
  t.equal(s.bundle, bundle.dir, 'state reports the absolute bundle path');
  t.equal(s.rootfs, bundle.rootfs, 'and the absolute rootfs path');
  t.equal(fs.readFileSync(path.join(bundle.dir, 'rel.pid'), 'utf8'), String(s.pid), 'pid file relative to the cwd');
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
  expectNothingLeft(t, bundle, id);
});

t.test('two creates of the same id at once: exactly one wins', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('samerace');
  cleanupContainer(t, bundle.root, id);
  const dir = tempDir(t);
  const runs = [0, 1].map((i) => {
    const out = fs.openSync(path.join(dir, `out${i}`), 'w');
    const err = fs.openSync(path.join(dir, `err${i}`), 'w');
    t.teardown(() => {
      fs.closeSync(out);
      fs.closeSync(err);
    });
    return tsrunAsync(t, bundle.root, ['create', '-b', bundle.dir, id], { stdio: ['ignore', out, err] });
  });
  const results = await Promise.all(runs.map((r) => r.done));
  const errs = [0, 1].map((i) => fs.readFileSync(path.join(dir, `err${i}`), 'utf8'));
  const ok = results.filter((r) => r.status === 0).length;
  t.equal(ok, 1, `exactly one create succeeds: ${errs.join(' | ')}`);
  const loser = results.findIndex((r) => r.status !== 0);
  if (loser >= 0) t.match(errs[loser], /exists/, 'the other says the id exists');
  const s = stateOf(bundle.root, id);
  t.equal(s.status, 'created', 'the winner is created');
  t.same(bundleProcesses(bundle), [s.pid], 'exactly one init runs');
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
  expectNothingLeft(t, bundle, id);
});

t.test('concurrent delete --force of the same container', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  for (const startIt of [false, true]) {
    for (let i = 0; i < 2; i++) {
      const id = uniqueId('race');
      t.equal(createContainer(t, bundle, id).status, 0, 'create');
      if (startIt) t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start');
      const pid = stateOf(bundle.root, id).pid;
      const d1 = tsrunAsync(t, bundle.root, ['delete', '--force', id]);
      const d2 = tsrunAsync(t, bundle.root, ['delete', '--force', id]);
      const [r1, r2] = await Promise.all([d1.done, d2.done]);
      for (const r of [r1, r2]) {
        if (r.status !== 0)
          t.match(r.stderr, /does not exist|not found/, `a failing delete says not found: ${r.stderr}`);
      }
      t.ok(r1.status === 0 || r2.status === 0, `at least one succeeds: ${r1.stderr} ${r2.stderr}`);
      t.notOk(alive(pid), 'the init is gone');
      t.not(tsrun(bundle.root, ['state', id]).status, 0, 'state fails');
      expectNothingLeft(t, bundle, id);
    }
  }
});

t.test('delete --force of a stopped (run --keep) container', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'exit', '0']);
  const id = uniqueId('fstop');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '--keep', '-b', bundle.dir, id]).status, 0);
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0, 'delete --force');
  expectNothingLeft(t, bundle, id);
});
