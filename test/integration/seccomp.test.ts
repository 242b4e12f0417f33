/**
 * linux.seccomp on the real kernel: every action and operator, flags,
 * architectures, errno defaults, the compiled-filter cache, Docker's
 * default profile, SCMP_ACT_NOTIFY with a real agent, and the same filter
 * for exec.  Busybox's `kill -0 PID` is the probe for argument rules: the
 * pid is argument 0 of kill(2) and signal 0 does nothing.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import {
  cleanupContainer,
  IS_ROOT,
  type TestLike,
  leftovers,
  makeBundle,
  PROJECT_ROOT,
  tempDir,
  tsrun,
  uniqueId,
  waitFor,
} from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const AGENT = path.join(PROJECT_ROOT, 'native', 'out', 'tsrun-seccomp-agent');
const DOCKER_DEFAULT = JSON.parse(
  fs.readFileSync(path.join(PROJECT_ROOT, 'spec-fixtures', 'seccomp', 'docker-default.json'), 'utf8'),
);
const SIGSYS_STATUS = 128 + 31;

type Seccomp = NonNullable<NonNullable<Config['linux']>['seccomp']>;

/** Run `sh -c script` under a filter; returns the run's result. */
function runUnder(t: TestLike, seccomp: Seccomp, script: string, mutate: (c: Config) => void = () => {}) {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.seccomp = seccomp;
      mutate(c);
    },
    ['sh', '-c', script],
  );
  const id = uniqueId('sc');
  cleanupContainer(t, bundle.root, id);
  const result = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  return { ...result, bundle, id };
}

const allowExcept = (rule: Record<string, unknown>): Seccomp => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [rule as never],
});
const MKDIR = ['mkdir', 'mkdirat'];

t.test('actions', async (t) => {
  const errno = runUnder(
    t,
    allowExcept({ names: MKDIR, action: 'SCMP_ACT_ERRNO', errnoRet: 28 }),
    'mkdir /tmp/d; echo status=$?',
  );
  t.match(errno.stdout + errno.stderr, /No space left on device/, 'ERRNO returns errnoRet');
  const eperm = runUnder(t, allowExcept({ names: MKDIR, action: 'SCMP_ACT_ERRNO' }), 'mkdir /tmp/d');
  t.match(eperm.stderr + eperm.stdout, /Operation not permitted/, 'ERRNO without errnoRet is EPERM');
  const trace = runUnder(t, allowExcept({ names: MKDIR, action: 'SCMP_ACT_TRACE' }), 'mkdir /tmp/d');
  t.match(trace.stderr + trace.stdout, /Function not implemented/, 'TRACE with no tracer attached: ENOSYS');
  for (const action of ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_TRAP']) {
    const r = runUnder(t, allowExcept({ names: MKDIR, action }), 'mkdir /tmp/d; echo status=$?');
    t.match(r.stdout, new RegExp(`status=${SIGSYS_STATUS}`), `${action}: the caller dies of SIGSYS`);
  }
  for (const action of ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG']) {
    const r = runUnder(
      t,
      { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [...DOCKER_DEFAULT.syscalls, { names: MKDIR, action }] },
      'mkdir /tmp/d && echo made',
    );
    t.match(r.stdout, /made/, `${action}: the call goes through`);
  }
  const dflt = runUnder(
    t,
    {
      ...DOCKER_DEFAULT,
      defaultErrnoRet: 28,
      syscalls: DOCKER_DEFAULT.syscalls.map((s: { names: string[] }) => ({
        ...s,
        names: s.names.filter((n) => !MKDIR.includes(n)),
      })),
    },
    'mkdir /tmp/d',
  );
  t.match(dflt.stderr + dflt.stdout, /No space left on device/, 'defaultErrnoRet');
});

t.test('argument operators, as kill(2) sees a pid', async (t) => {
  const pids = [1, 5, 10, 20];
  // EACCES marks the rule's hits: kill -0 of a missing pid fails too, with ESRCH.
  const probeErr = pids.map((p) => `kill -0 ${p}`).join('; ');
  const blocked = (args: object[]): number[] => {
    const r = runUnder(
      t,
      allowExcept({ names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args }),
      `${probeErr}; true`,
    );
    return pids.filter((p) => new RegExp(`can't kill pid ${p}: Permission denied`).test(r.stderr + r.stdout));
  };
  const at10 = (op: string) => [{ index: 0, value: 10, op }];
  t.same(blocked(at10('SCMP_CMP_EQ')), [10], 'EQ');
  t.same(blocked(at10('SCMP_CMP_NE')), [1, 5, 20], 'NE');
  t.same(blocked(at10('SCMP_CMP_LT')), [1, 5], 'LT');
  t.same(blocked(at10('SCMP_CMP_LE')), [1, 5, 10], 'LE');
  t.same(blocked(at10('SCMP_CMP_GE')), [10, 20], 'GE');
  t.same(blocked(at10('SCMP_CMP_GT')), [20], 'GT');
  t.same(
    blocked([{ index: 0, value: 4, valueTwo: 4, op: 'SCMP_CMP_MASKED_EQ' }]),
    [5, 20],
    'MASKED_EQ: (pid & 4) == 4',
  );
  t.same(
    blocked([
      { index: 0, value: 5, op: 'SCMP_CMP_EQ' },
      { index: 0, value: 20, op: 'SCMP_CMP_EQ' },
    ]),
    [5, 20],
    'two conditions on one argument are alternatives (runc)',
  );
  t.same(
    blocked([
      { index: 0, value: 5, op: 'SCMP_CMP_EQ' },
      { index: 1, value: 0, op: 'SCMP_CMP_EQ' },
    ]),
    [5],
    'conditions on different arguments must all hold',
  );
  t.same(
    blocked([
      { index: 0, value: 5, op: 'SCMP_CMP_EQ' },
      { index: 1, value: 9, op: 'SCMP_CMP_EQ' },
    ]),
    [],
    '...and do not match when one fails',
  );
});

t.test("Docker's default profile: busybox works, the dangerous calls do not", async (t) => {
  const r = runUnder(
    t,
    DOCKER_DEFAULT,
    [
      'echo hello',
      'ls / >/dev/null && echo ls-ok',
      'ps >/dev/null && echo ps-ok',
      'id -u',
      'sleep 0 && echo sleep-ok',
      'mkdir /tmp/x && echo mkdir-ok',
      'unshare -m true 2>/dev/null; echo unshare=$?',
      'mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?',
      'hostname evil 2>/dev/null; echo hostname=$?',
    ].join('; '),
    (c) => {
      c.root!.readonly = false;
    },
  );
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /hello\nls-ok\nps-ok\n0\nsleep-ok\nmkdir-ok\n/);
  t.match(r.stdout, /unshare=1/, 'unshare: refused');
  t.match(r.stdout, /mount=[1-9]/, 'mount: refused although the process holds CAP_SYS_ADMIN');
  t.match(r.stdout, /hostname=1/, 'sethostname: refused');
});

t.test('no_new_privileges off: the filter loads while CAP_SYS_ADMIN is held, then the user switch', async (t) => {
  const r = runUnder(
    t,
    allowExcept({ names: MKDIR, action: 'SCMP_ACT_ERRNO', errnoRet: 28 }),
    'id -u; mkdir /tmp/d',
    (c) => {
      c.process!.noNewPrivileges = false;
      c.process!.user = { uid: 1000, gid: 1000 };
      c.process!.capabilities = { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] };
    },
  );
  t.equal(r.stdout.trim().split('\n')[0], '1000');
  t.match(r.stderr + r.stdout, /No space left on device/);
  const nnp = runUnder(
    t,
    allowExcept({ names: MKDIR, action: 'SCMP_ACT_ERRNO', errnoRet: 28 }),
    'grep NoNewPrivs /proc/self/status; mkdir /tmp/d',
    (c) => {
      c.process!.noNewPrivileges = true;
      c.process!.user = { uid: 1000, gid: 1000 };
    },
  );
  t.match(nnp.stdout, /NoNewPrivs:\s+1/);
  t.match(nnp.stderr + nnp.stdout, /No space left on device/, 'with no_new_privileges: loaded last, still in force');
});

t.test('flags, architectures and unknown syscalls', async (t) => {
  const r = runUnder(
    t,
    {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      flags: [
        'SECCOMP_FILTER_FLAG_TSYNC',
        'SECCOMP_FILTER_FLAG_LOG',
        'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
        'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
      ],
      syscalls: [{ names: ['no_such_syscall_at_all', ...MKDIR], action: 'SCMP_ACT_ERRNO', errnoRet: 28 }],
    } as Seccomp,
    'grep Seccomp: /proc/self/status; mkdir /tmp/d',
  );
  t.equal(r.status, 1, r.stderr);
  t.match(r.stdout, /Seccomp:\s+2/, 'filter mode');
  t.match(r.stderr, /No space left on device/, 'unknown names are skipped, the rest of the rule holds');
});

t.test('bad sections are one-line errors, nothing left behind', async (t) => {
  const cases: Array<[Seccomp, RegExp]> = [
    [
      { defaultAction: 'SCMP_ACT_NOPE' },
      /^tsrun: run \S+: linux\.seccomp\.defaultAction: unknown action "SCMP_ACT_NOPE"/,
    ],
    [
      { defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 5 } as Seccomp,
      /linux\.seccomp\.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno/,
    ],
    [
      allowExcept({ names: ['mkdir'], action: 'SCMP_ACT_KILL', errnoRet: 1 }),
      /linux\.seccomp\.syscalls\[0\]\.errnoRet: SCMP_ACT_KILL takes no errno/,
    ],
    [
      allowExcept({ names: [], action: 'SCMP_ACT_KILL' }),
      /linux\.seccomp\.syscalls\[0\]\.names: must name at least one syscall/,
    ],
    [
      allowExcept({ names: ['kill'], action: 'SCMP_ACT_KILL', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }),
      /syscalls\[0\]\.args\[0\]\.index: must be an integer from 0 to 5/,
    ],
    [
      allowExcept({ names: ['kill'], action: 'SCMP_ACT_KILL', args: [{ index: 0, value: 1, op: 'SCMP_CMP_LIKE' }] }),
      /syscalls\[0\]\.args\[0\]\.op: unknown operator/,
    ],
    [
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] } as Seccomp,
      /linux\.seccomp\.architectures\[0\]: unknown architecture/,
    ],
    [
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_LOONGARCH64'] } as Seccomp,
      /linux\.seccomp: libseccomp does not know the architecture loongarch64/,
    ],
    [
      { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_FAST'] } as Seccomp,
      /linux\.seccomp\.flags\[0\]: unknown flag/,
    ],
    [
      { defaultAction: 'SCMP_ACT_NOTIFY' },
      /linux\.seccomp\.defaultAction: SCMP_ACT_NOTIFY cannot be the default action/,
    ],
    [
      allowExcept({ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }),
      /linux\.seccomp\.listenerPath: required when a rule uses SCMP_ACT_NOTIFY/,
    ],
    [
      {
        ...allowExcept({ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }),
        listenerPath: '/nonexistent/agent.sock',
      } as Seccomp,
      /linux\.seccomp\.listenerPath: send the seccomp listener to \/nonexistent\/agent\.sock: no such file or directory/,
    ],
  ];
  for (const [seccomp, message] of cases) {
    const r = runUnder(t, seccomp, 'true');
    t.not(r.status, 0);
    t.match(r.stderr, message);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.same(leftovers(r.bundle, r.id), []);
  }
});

t.test('compiled filters are cached by what they compile to', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.seccomp = DOCKER_DEFAULT;
    },
    ['true'],
  );
  const cache = path.join(bundle.root, '.cache', 'seccomp');
  const first = tsrun(bundle.root, ['--debug', 'run', '-b', bundle.dir, uniqueId('cache')]);
  t.equal(first.status, 0, first.stderr);
  t.notMatch(first.stderr, /\(cached\)/);
  const files = fs.readdirSync(cache);
  t.equal(files.length, 1, 'one entry');
  t.equal(fs.statSync(cache).mode & 0o777, 0o700, 'root-only');
  const second = tsrun(bundle.root, ['--debug', 'run', '-b', bundle.dir, uniqueId('cache')]);
  t.equal(second.status, 0, second.stderr);
  t.match(second.stderr, /instructions \(cached\)/, 'the second run skips libseccomp');
  t.same(tsrun(bundle.root, ['list', '-q']).stdout, '', 'the cache is not a container');
  // A torn entry is compiled again, not loaded.
  fs.writeFileSync(path.join(cache, files[0]), Buffer.alloc(13));
  const third = tsrun(bundle.root, ['--debug', 'run', '-b', bundle.dir, uniqueId('cache')]);
  t.equal(third.status, 0, third.stderr);
  t.notMatch(third.stderr, /\(cached\)/);
  t.equal(fs.statSync(path.join(cache, files[0])).size % 8, 0, 'and replaced');
  t.match(tsrun(bundle.root, ['create', '-b', bundle.dir, '.cache']).stderr, /reserved/);
});

t.test("exec runs under the container's filter", async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.seccomp = allowExcept({ names: MKDIR, action: 'SCMP_ACT_ERRNO', errnoRet: 28 });
      c.root!.readonly = false;
    },
    ['sleep', '1000'],
  );
  const id = uniqueId('scx');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
  const r = tsrun(bundle.root, ['exec', id, 'mkdir', '/tmp/e']);
  t.not(r.status, 0);
  t.match(r.stderr + r.stdout, /No space left on device/);
  const nnp = tsrun(bundle.root, [
    'exec',
    '--no-new-privs',
    '--user',
    '1000',
    id,
    'sh',
    '-c',
    'grep NoNewPrivs /proc/self/status; mkdir /tmp/f',
  ]);
  t.match(nnp.stdout, /NoNewPrivs:\s+1/);
  t.match(nnp.stderr + nnp.stdout, /No space left on device/);
  t.equal(tsrun(bundle.root, ['exec', id, 'grep', '-c', 'Seccomp:.*2', '/proc/self/status']).stdout.trim(), '1');
});

t.test('SCMP_ACT_NOTIFY: the listener and the state reach listenerPath, for run and exec', async (t) => {
  const dir = tempDir(t, 'tsrun-agent-');
  const socket = path.join(dir, 'agent.sock');
  const log = path.join(dir, 'agent.log');
  const agent = spawn(AGENT, [socket, log, '95'], { stdio: 'ignore' }); // answers EOPNOTSUPP
  t.teardown(() => {
    agent.kill('SIGKILL');
  });
  t.ok(await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('listening')), 'agent up');

  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.seccomp = {
        ...allowExcept({ names: MKDIR, action: 'SCMP_ACT_NOTIFY' }),
        listenerPath: socket,
        listenerMetadata: 'meta=1',
        flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
      } as Seccomp;
      c.root!.readonly = false;
      c.annotations = { 'org.example/key': 'value' };
    },
    ['sh', '-c', 'mkdir /tmp/n; echo status=$?; sleep 1000'],
  );
  const id = uniqueId('notify');
  cleanupContainer(t, bundle.root, id);
  const pidFile = path.join(dir, 'pid');
  t.equal(tsrun(bundle.root, ['run', '-d', '--pid-file', pidFile, '-b', bundle.dir, id]).status, 0);
  const initPid = Number(fs.readFileSync(pidFile, 'utf8'));
  // The whole line: the agent may be caught halfway through writing it.
  t.ok(await waitFor(() => /notify \d+ pid \d+\n/.test(fs.readFileSync(log, 'utf8'))), 'the agent got the mkdir');
  const states = () =>
    fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('state '))
      .map((l) => JSON.parse(l.slice(6)));
  const [created] = states();
  t.same(created.fds, ['seccompFd']);
  t.equal(created.metadata, 'meta=1');
  t.equal(created.pid, initPid);
  t.match(created.state, {
    id,
    status: 'creating',
    pid: initPid,
    bundle: bundle.dir,
    annotations: { 'org.example/key': 'value' },
  });
  t.ok(fs.readFileSync(log, 'utf8').match(/notify 83 pid \d+/), 'mkdir (83) notified');
  t.notOk(fs.existsSync(path.join(bundle.rootfs, 'tmp', 'n')), "the agent's answer stands: nothing made");

  const e = tsrun(bundle.root, ['exec', id, 'mkdir', '/tmp/m']);
  t.not(e.status, 0);
  t.match(e.stderr + e.stdout, /Not supported|Operation not supported/, 'EOPNOTSUPP from the agent');
  const execState = states()[1];
  t.equal(execState?.state.status, 'running', 'exec: a second connection, with the running state');
  t.not(execState?.pid, initPid, "exec: the exec'd process's pid");
});

t.test('features tells what this libseccomp and kernel do', async (t) => {
  const f = JSON.parse(tsrun(tempDir(t), ['features']).stdout);
  t.equal(f.linux.seccomp.enabled, true);
  t.same(f.linux.seccomp.operators, [
    'SCMP_CMP_NE',
    'SCMP_CMP_LT',
    'SCMP_CMP_LE',
    'SCMP_CMP_EQ',
    'SCMP_CMP_GE',
    'SCMP_CMP_GT',
    'SCMP_CMP_MASKED_EQ',
  ]);
  t.ok(
    f.linux.seccomp.actions.includes('SCMP_ACT_NOTIFY') && f.linux.seccomp.actions.includes('SCMP_ACT_KILL_PROCESS'),
  );
  t.ok(f.linux.seccomp.archs.includes('SCMP_ARCH_X86_64') && f.linux.seccomp.archs.includes('SCMP_ARCH_X32'));
  t.notOk(
    f.linux.seccomp.archs.includes('SCMP_ARCH_S390X'),
    'big-endian arches cannot join an x86_64 filter: not listed',
  );
  t.same(f.linux.seccomp.knownFlags, [
    'SECCOMP_FILTER_FLAG_TSYNC',
    'SECCOMP_FILTER_FLAG_LOG',
    'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
    'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
  ]);
  t.same(f.linux.seccomp.supportedFlags, f.linux.seccomp.knownFlags, 'kernel 6.x has them all');
  t.match(f.annotations['io.github.seccomp.libseccomp.version'], /^\d+\.\d+\.\d+$/);
});
