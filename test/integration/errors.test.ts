/**
 * Integration tests of tsrun's failures: every error is one line on stderr
 * ("tsrun: VERB ID: reason") naming what is wrong, a non-zero exit status,
 * and nothing left behind (no state dir, no mounts, no processes).
 */
import t from 'tap';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  alive,
  baseConfig,
  bundleProcesses,
  type Bundle,
  FIXTURE_ROOTFS,
  IS_ROOT,
  type RunResult,
  runCommand,
  TSRUN,
  type TestLike,
  cleanEnv,
  cleanupContainer,
  leftovers,
  makeBundle,
  tempDir,
  tsrun,
  uniqueId,
  waitFor,
} from '../helpers';
import { type Config } from '../../src/lib/config';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

/**
 * tsrun with stdout/stderr in files: a `create` that wrongly succeeds would
 * hand pipes to a container that outlives tsrun, and spawnSync would wait
 * for the container instead of tsrun.
 */
function tsrunFiles(_t: TestLike, root: string, args: string[], timeoutMs = 30_000): RunResult {
  return tsrun(root, args, { timeoutMs });
}

/** Non-zero exit, exactly one stderr line starting "tsrun: ", matching every pattern. */
function expectOneError(t: any, r: RunResult, what: string, patterns: (RegExp | string)[]): string {
  t.not(r.status, 0, `${what}: exit status is non-zero (${r.status})`);
  t.equal(r.signal, null, `${what}: tsrun was not killed by a signal`);
  t.ok(r.stderr.endsWith('\n'), `${what}: stderr ends with a newline`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `${what}: exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
  const line = lines[0] ?? '';
  t.match(line, /^tsrun: \S/, `${what}: the line starts with "tsrun: "`);
  for (const p of patterns) t.match(line, p, `${what}: the error names ${p}`);
  return line;
}

function expectNothingLeft(t: any, bundle: Bundle, id: string, what: string): void {
  t.same(leftovers(bundle, id), [], `${what}: nothing of the container is left`);
  t.same(bundleProcesses(bundle), [], `${what}: no process runs inside the bundle`);
  const ids = fs.existsSync(bundle.root) ? fs.readdirSync(bundle.root) : [];
  t.same(ids, [], `${what}: the state root holds nothing`);
}

interface Case {
  name: string;
  /** Change the config (written after). */
  mutate?: (c: Config) => void;
  /** Change the bundle on disk after the config is written. */
  prepare?: (b: Bundle) => void;
  args?: string[];
  /** What the one error line must mention. */
  patterns: (RegExp | string | ((b: Bundle) => RegExp | string))[];
  /** Default: create only; failures inside the init are also tried with run. */
  verbs?: ('create' | 'run')[];
}

/** For each verb, the bundle's create (or run) fails cleanly and says why. */
function failingBundle(c: Case): void {
  t.test(c.name, async (t) => {
    const bundle = makeBundle(t, c.mutate, c.args ?? ['/bin/checker', 'sleep', '30']);
    c.prepare?.(bundle);
    for (const verb of c.verbs ?? ['create']) {
      const id = uniqueId('err');
      cleanupContainer(t, bundle.root, id);
      const pidFile = path.join(bundle.dir, 'init.pid');
      const r = tsrunFiles(t, bundle.root, [verb, '-b', bundle.dir, '--pid-file', pidFile, id]);
      const patterns = c.patterns.map((p) => (typeof p === 'function' ? p(bundle) : p));
      expectOneError(t, r, verb, patterns);
      t.notOk(fs.existsSync(pidFile), `${verb}: no pid file`);
      expectNothingLeft(t, bundle, id, verb);
    }
  });
}

failingBundle({
  name: 'invalid JSON in config.json',
  verbs: ['create', 'run'],
  prepare: (b) => fs.writeFileSync(path.join(b.dir, 'config.json'), '{"ociVersion": "1.3.0", "process": {'),
  patterns: [/config\.json|JSON/i],
});

failingBundle({
  name: 'config.json that is not an object',
  prepare: (b) => fs.writeFileSync(path.join(b.dir, 'config.json'), '[1, 2, 3]\n'),
  patterns: [/config|object/i],
});

failingBundle({
  name: 'a field of the wrong type: process.args a string',
  mutate: (c) => {
    (c.process as any).args = '/bin/checker';
  },
  patterns: [/process\.args/],
});

failingBundle({
  name: 'a field of the wrong type: process.user.uid a string',
  mutate: (c) => {
    (c.process as any).user.uid = '0';
  },
  patterns: [/process\.user\.uid/],
});

failingBundle({
  name: 'missing bundle directory',
  prepare: (b) => fs.rmSync(b.dir, { recursive: true, force: true }),
  patterns: [(b) => b.dir],
});

failingBundle({
  name: 'missing rootfs',
  verbs: ['create', 'run'],
  prepare: (b) => fs.rmSync(b.rootfs, { recursive: true, force: true }),
  patterns: [/rootfs|root\.path/],
});

failingBundle({
  name: 'rootfs that is a file',
  prepare: (b) => {
    fs.rmSync(b.rootfs, { recursive: true, force: true });
    fs.writeFileSync(b.rootfs, 'not a directory\n');
  },
  patterns: [/rootfs|root\.path/],
});

failingBundle({
  name: 'missing process at create',
  mutate: (c) => {
    delete (c as any).process;
  },
  patterns: [/\bprocess\b/],
});

failingBundle({
  name: 'relative process.cwd',
  mutate: (c) => {
    c.process!.cwd = 'tmp';
  },
  patterns: [/cwd/],
});

failingBundle({
  name: 'a bind mount whose source does not exist',
  verbs: ['create', 'run'],
  mutate: (c) => {
    c.mounts!.push({
      destination: '/mnt/data',
      type: 'bind',
      source: `/nonexistent-tsrun-src-${process.pid}`,
      options: ['rbind', 'ro'],
    });
  },
  patterns: [`/nonexistent-tsrun-src-${process.pid}`],
});

failingBundle({
  name: 'a binary that does not exist',
  verbs: ['create', 'run'],
  args: ['/nope'],
  patterns: ['/nope', /no such file/i],
});

failingBundle({
  name: 'a binary that is not on PATH',
  verbs: ['create', 'run'],
  args: ['no-such-command'],
  patterns: ['no-such-command'],
});

failingBundle({
  name: 'a non-executable file',
  verbs: ['create', 'run'],
  args: ['/bin/not-executable'],
  prepare: (b) =>
    fs.writeFileSync(path.join(b.rootfs, 'bin', 'not-executable'), '#!/bin/sh\necho hi\n', { mode: 0o644 }),
  patterns: ['/bin/not-executable', /permission denied/i],
});

failingBundle({
  name: 'a namespace path that does not exist',
  verbs: ['create', 'run'],
  mutate: (c) => {
    c.linux!.namespaces = c.linux!.namespaces!.map((n) =>
      n.type === 'network' ? { type: 'network', path: '/nonexistent' } : n,
    );
  },
  patterns: ['/nonexistent'],
});

failingBundle({
  name: 'a namespace path of the wrong type',
  verbs: ['create', 'run'],
  mutate: (c) => {
    c.linux!.namespaces = c.linux!.namespaces!.map((n) =>
      n.type === 'network' ? { type: 'network', path: '/proc/self/ns/uts' } : n,
    );
  },
  patterns: [/\/proc\/self\/ns\/uts|network/],
});

failingBundle({
  name: 'an unknown namespace type',
  mutate: (c) => {
    c.linux!.namespaces!.push({ type: 'nosuchns' as any });
  },
  patterns: ['nosuchns'],
});

failingBundle({
  name: 'a mount of an unknown filesystem type',
  verbs: ['create', 'run'],
  mutate: (c) => {
    c.mounts!.push({ destination: '/mnt', type: 'nosuchfs', source: 'none' });
  },
  // runc names only the destination and errno here; the type would be nicer
  patterns: ['/mnt', /nosuchfs|no such device/],
});

failingBundle({
  name: 'hostname set without a uts namespace',
  verbs: ['create', 'run'],
  mutate: (c) => {
    c.hostname = 'no-uts';
    c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'uts');
  },
  patterns: [/hostname/, /uts/i],
});

failingBundle({
  name: 'process.terminal without --console-socket',
  mutate: (c) => {
    c.process!.terminal = true;
  },
  patterns: [/terminal|console/],
  verbs: ['create'],
});

failingBundle({
  name: 'a prestart hook that does not exist',
  verbs: ['create', 'run'],
  mutate: (c) => {
    c.hooks = { prestart: [{ path: `/nonexistent-tsrun-hook-${process.pid}` }] };
  },
  patterns: [`/nonexistent-tsrun-hook-${process.pid}`],
});

t.test('--console-socket that does not exist', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.process!.terminal = true;
    },
    ['/bin/checker'],
  );
  const id = uniqueId('err');
  cleanupContainer(t, bundle.root, id);
  const sock = path.join(bundle.dir, 'no-such.sock');
  const r = tsrunFiles(t, bundle.root, ['create', '-b', bundle.dir, '--console-socket', sock, id]);
  expectOneError(t, r, 'create', [sock]);
  expectNothingLeft(t, bundle, id, 'create');
});

t.test('--pid-file in a missing directory: create fails and kills its init', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('err');
  cleanupContainer(t, bundle.root, id);
  const pidFile = path.join(bundle.dir, 'no-such-dir', 'init.pid');
  const r = tsrunFiles(t, bundle.root, ['create', '-b', bundle.dir, '--pid-file', pidFile, id]);
  expectOneError(t, r, 'create', [pidFile]);
  t.ok(await waitFor(() => bundleProcesses(bundle).length === 0, 5_000), 'the init is gone');
  expectNothingLeft(t, bundle, id, 'create');
});

t.test('kill with an unknown signal leaves a created container created', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'sleep', '30']);
  const id = uniqueId('sig');
  cleanupContainer(t, bundle.root, id);
  const c = tsrunFiles(t, bundle.root, ['create', '-b', bundle.dir, id]);
  t.equal(c.status, 0, `create: ${c.stderr}`);
  const before = JSON.parse(tsrun(bundle.root, ['state', id]).stdout);
  t.equal(before.status, 'created');
  // Signal 0 is not in the list: it probes, as runc's kill takes it (test/compat/cli-semantics).
  for (const sig of ['NOSUCH', 'SIGNOSUCH', '-1', '65', 'RTMIN-1']) {
    const r = tsrun(bundle.root, ['kill', id, sig]);
    expectOneError(t, r, `kill ${sig}`, [sig]);
    t.ok(alive(before.pid), `after kill ${sig} its init is alive`);
  }
  const now = JSON.parse(tsrun(bundle.root, ['state', id]).stdout);
  t.equal(now.status, 'created', 'the container is still created');
  t.equal(now.pid, before.pid, 'same init');
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete');
  expectNothingLeft(t, bundle, id, 'delete');
});

t.test('unknown id', async (t) => {
  const root = path.join(tempDir(t), 'state');
  fs.mkdirSync(root);
  const id = uniqueId('ghost');
  for (const args of [
    ['state', id],
    ['start', id],
    ['kill', id],
    ['kill', id, 'KILL'],
    ['delete', id],
  ]) {
    const r = tsrun(root, args);
    expectOneError(t, r, args.join(' '), [id, /does not exist|not found/]);
    t.equal(r.stdout, '', `${args[0]}: nothing on stdout`);
    t.notOk(fs.existsSync(path.join(root, id)), `${args[0]}: no state dir for the id`);
  }
  // as runc: delete --force of an unknown id succeeds quietly
  const f = tsrun(root, ['delete', '--force', id]);
  t.equal(f.status, 0, 'delete --force of an unknown id succeeds');
  t.equal(f.stderr, '', 'quietly');
  t.same(fs.readdirSync(root), [], 'the root is still empty');
  // and with a root that does not exist at all
  const missing = path.join(tempDir(t), 'never-made');
  const s = tsrun(missing, ['state', id]);
  expectOneError(t, s, 'state with a missing root', [id]);
  t.notOk(fs.existsSync(path.join(missing, id)), 'no state dir created');
});

t.test('invalid ids', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/checker', 'exit', '0']);
  const outside = path.dirname(bundle.root);
  const entriesBefore = fs.readdirSync(outside).sort();
  for (const id of ['a/b', '..', '.', '../escape', 'a b']) {
    const r = tsrunFiles(t, bundle.root, ['create', '-b', bundle.dir, '--', id]);
    expectOneError(t, r, `create "${id}"`, [/invalid|id/]);
  }
  for (const id of ['a/b', '..']) {
    for (const args of [
      ['run', '-b', bundle.dir, '--', id],
      ['state', '--', id],
      ['delete', '--force', '--', id],
      ['kill', '--', id, 'KILL'],
      ['start', '--', id],
    ]) {
      const r = tsrunFiles(t, bundle.root, args);
      expectOneError(t, r, `${args[0]} "${id}"`, [/invalid|id/]);
    }
  }
  t.same(fs.readdirSync(outside).sort(), entriesBefore, 'nothing created next to the root');
  t.notOk(fs.existsSync(path.join(bundle.root, 'a')), 'no "a" dir under the root');
  const inRoot = fs.existsSync(bundle.root) ? fs.readdirSync(bundle.root) : [];
  t.same(inRoot, [], 'nothing under the root');
  t.same(bundleProcesses(bundle), [], 'no process left');
});

t.test('the error line is "tsrun: VERB ID: reason"', async (t) => {
  const root = path.join(tempDir(t), 'state');
  const id = uniqueId('fmt');
  const s = tsrun(root, ['state', id]);
  t.match(s.stderr, new RegExp(`^tsrun: state ${id}: `), `state: ${JSON.stringify(s.stderr)}`);
  const bundle = makeBundle(t, () => {}, ['/nope']);
  cleanupContainer(t, bundle.root, id);
  const c = tsrunFiles(t, bundle.root, ['create', '-b', bundle.dir, id]);
  t.match(c.stderr, new RegExp(`^tsrun: create ${id}: `), `create: ${JSON.stringify(c.stderr)}`);
  const r = tsrunFiles(t, bundle.root, ['run', '-b', bundle.dir, id]);
  t.match(r.stderr, new RegExp(`^tsrun: run ${id}: `), `run: ${JSON.stringify(r.stderr)}`);
  expectNothingLeft(t, bundle, id, 'create');
});

t.test('--log with --log-format json records the error', async (t) => {
  const bundle = makeBundle(t, (c) => {
    (c.process as any).args = 'not-an-array';
  });
  const id = uniqueId('log');
  cleanupContainer(t, bundle.root, id);
  const log = path.join(tempDir(t), 'tsrun.log');
  const r = tsrunFiles(t, bundle.root, ['--log', log, '--log-format', 'json', 'create', '-b', bundle.dir, id]);
  const line = expectOneError(t, r, 'create', [/process\.args/]);
  t.ok(fs.existsSync(log), 'log file written');
  const entries = fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const errors = entries.filter((e) => e.level === 'error');
  t.equal(errors.length, 1, `one error entry: ${JSON.stringify(entries)}`);
  const e = errors[0] ?? {};
  t.type(e.msg, 'string');
  t.match(e.msg, /process\.args/, 'msg names the field');
  t.ok(line.endsWith(e.msg), 'the log msg is the reason shown on stderr');
  t.ok(!Number.isNaN(Date.parse(e.time)), 'time is a timestamp');
  expectNothingLeft(t, bundle, id, 'create');

  // the log is appended to, not truncated
  const r2 = tsrun(bundle.root, ['--log', log, '--log-format', 'json', 'state', id]);
  t.not(r2.status, 0);
  const after = fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  t.equal(after.filter((x) => x.level === 'error').length, 2, 'second error appended');
});

t.test('stdio /dev/null opened read-only (containerd NullIO): the log still has the reason, once', async (t) => {
  // containerd's shim gives a pod sandbox's runtime /dev/null O_RDONLY on 0, 1 and 2 (go-runc NullIO), and reports
  // the log's last error line.  The failed write of the reason to stderr once replaced it there with "create:
  // write: bad file descriptor", so a kubelet saw that instead of why the sandbox failed.
  const bundle = makeBundle(t, (c) => {
    (c.process as any).args = 'not-an-array';
  });
  const id = uniqueId('nullio');
  cleanupContainer(t, bundle.root, id);
  const log = path.join(tempDir(t), 'tsrun.log');
  const devNull = fs.openSync('/dev/null', 'r');
  const r = spawnSync(
    TSRUN,
    ['--root', bundle.root, '--log', log, '--log-format', 'json', 'create', '-b', bundle.dir, id],
    { stdio: [devNull, devNull, devNull], env: cleanEnv() },
  );
  fs.closeSync(devNull);
  t.equal(r.status, 1, 'the failure status');
  const errors = fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.level === 'error');
  t.equal(errors.length, 1, `one error entry: ${JSON.stringify(errors)}`);
  t.match(errors[0]?.msg, /^create nullio-\S+: .*process\.args/, 'and it is the reason');
  expectNothingLeft(t, bundle, id, 'create');
});

t.test('--log in text format records the error', async (t) => {
  const root = path.join(tempDir(t), 'state');
  const log = path.join(tempDir(t), 'tsrun.log');
  const id = uniqueId('log');
  const r = tsrun(root, ['--log', log, 'state', id]);
  expectOneError(t, r, 'state', [id]);
  const text = fs.readFileSync(log, 'utf8');
  t.match(text, /level=error/);
  t.match(text, id);
});

t.test('bad command lines', async (t) => {
  const root = path.join(tempDir(t), 'state');
  const cases: [string[], RegExp][] = [
    [['nosuchverb'], /nosuchverb/],
    [['--log-format', 'yaml', 'list'], /log-format/],
    [['state'], /id|argument/],
    [['create', '-b', root, '--preserve-fds', '-1', 'x'], /preserve-fds/],
  ];
  for (const [args, pattern] of cases) {
    const r = tsrun(root, args);
    const line = expectOneError(t, r, args.join(' '), [pattern]);
    t.notOk(line.includes(root), `${args.join(' ')}: the --root value is not shown as the verb or id: ${line}`);
  }
  t.notOk(fs.existsSync(path.join(root, 'x')), 'no state dir');
});

t.test(
  'as an unprivileged user, a config without a user namespace: one line that says so, and nothing made',
  async (t) => {
    // Before issue 17, the first cgroup write failed: "/sys/fs/cgroup/cpu/ID: permission denied".
    const dir = tempDir(t);
    fs.chmodSync(dir, 0o755);
    const bundle = path.join(dir, 'bundle');
    fs.mkdirSync(bundle);
    spawnSync('cp', ['-a', FIXTURE_ROOTFS, path.join(bundle, 'rootfs')]);
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(baseConfig(['/bin/true'])), { mode: 0o644 });
    const shared = path.join(dir, 'shared');
    fs.mkdirSync(shared, { mode: 0o1777 });
    fs.chmodSync(shared, 0o1777);
    const root = path.join(shared, 'state');
    const r = runCommand(['runuser', '-u', 'nobody', '--', TSRUN, '--root', root, 'run', '-b', bundle, 'unpriv']);
    t.equal(r.status, 1);
    t.equal(
      r.stderr,
      'tsrun: run unpriv: linux.namespaces: this is uid 65534, not root: a container needs a user namespace of its own (type "user"), with uidMappings and gidMappings (tsrun spec --rootless writes one)\n',
    );
    t.notOk(fs.existsSync(root), 'no --root made');
  },
);
