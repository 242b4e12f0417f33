/**
 * Issue 15, items 6 and 8: lifecycle and placement behaviour a user meets
 * at once, compared with runc 1.1.5.
 *  - a container whose cgroup is frozen before it starts is refused, not
 *    waited on for good;
 *  - exec --cgroup works on v1 and hybrid hosts, for all controllers or
 *    per controller;
 *  - a created container can be paused (state "paused") and resumed (back
 *    to "created"); exec and start refuse it meanwhile; delete -f works;
 *  - without cgroupsPath, the container goes below the caller's own cgroup;
 *  - a terminal with no terminal to attach it to fails at once;
 *  - --console-socket needs a terminal, and the pty arrives named as runc
 *    names it.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { readHierarchies } from '../../src/lib/cgroup/manager';
import { native } from '../../src/lib/native';
import { IS_ROOT, makeBundle, runCommand, uniqueId } from '../helpers';
import {
  cleanupBoth,
  differsOnPurpose,
  idFor,
  referenceInstalled,
  RUNTIMES,
  under,
  underBoth,
} from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const hierarchies = readHierarchies();
const hybridOrV1 = hierarchies.some((h) => h.version === 1);
const status = (rt: (typeof RUNTIMES)[number], bundle: Parameters<typeof under>[1], id: string): string =>
  JSON.parse(under(rt, bundle, id, ['state', '%ID%']).stdout || '{"status":"gone"}').status;

t.test('a cgroup frozen beforehand: refused at once, as runc refuses it', async (t) => {
  for (const rt of RUNTIMES) {
    const name = `tsrun-compat-frozen-${process.pid}-${rt.name}`;
    const dirs = hierarchies.map((h) => path.join(h.mountPoint, name));
    for (const dir of dirs) fs.mkdirSync(dir);
    t.teardown(() => {
      for (const dir of dirs) if (fs.existsSync(dir)) fs.rmdirSync(dir);
    });
    const freezer = hierarchies.find((h) => h.controllers.includes('freezer'));
    if (freezer) fs.writeFileSync(path.join(freezer.mountPoint, name, 'freezer.state'), 'FROZEN');
    else fs.writeFileSync(path.join(hierarchies[0].mountPoint, name, 'cgroup.freeze'), '1');
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.cgroupsPath = `/${name}`;
      },
      ['/bin/echo', 'ran'],
    );
    const id = uniqueId('frozen');
    cleanupBoth(t, bundle, id);
    const r = under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%'], { timeoutMs: 30_000 });
    t.equal(r.signal, null, `${rt.name}: no hang`);
    t.equal(r.status, 1, `${rt.name}: refused: ${r.stderr.trim()}`);
    t.notMatch(r.stdout, /ran/, `${rt.name}: the program never ran`);
    if (rt.name === 'tsrun') t.match(r.stderr, /linux\.cgroupsPath: the container's cgroup is frozen/);
    if (freezer) fs.writeFileSync(path.join(freezer.mountPoint, name, 'freezer.state'), 'THAWED');
  }
});

t.test(
  'exec --cgroup on a v1 or hybrid host: all controllers or per controller, as runc',
  { skip: !hybridOrV1 && 'a cgroup2-only host (the VM runs exec --cgroup there)' },
  async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
      },
      ['/bin/sleep', '1000'],
    );
    const id = uniqueId('subcg');
    cleanupBoth(t, bundle, id);
    const seenBy: Record<string, string[]> = {};
    for (const rt of RUNTIMES) {
      t.equal(
        under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status,
        0,
        `${rt.name}: run --detach`,
      );
      const pid = JSON.parse(under(rt, bundle, id, ['state', '%ID%']).stdout).pid as number;
      // A "sub" in the memory and cpu hierarchies of the container (not cpuset: a new one admits nobody).
      for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
        const [, controllers, cg] = line.split(':');
        const h = hierarchies.find((x) =>
          x.version === 2 ? controllers === '' : x.controllers.join(',') === controllers,
        );
        if (h && /memory|cpu\b/.test(controllers)) fs.mkdirSync(path.join(h.mountPoint, cg, 'sub'));
      }
      const out = (args: string[]) => {
        const r = under(rt, bundle, id, ['exec', ...args, '%ID%', '/bin/cat', '/proc/self/cgroup']);
        return `${r.status} ${r.stdout
          .split('\n')
          .filter((l) => /:(memory|cpu|pids):/.test(l))
          .map((l) => l.replace(new RegExp(idFor(rt, id), 'g'), 'ID'))
          .join(' ')}`;
      };
      seenBy[rt.name] = [
        out(['--cgroup', 'memory:sub', '--cgroup', 'cpu:sub']),
        out(['--cgroup', 'memory:sub']),
        out(['--cgroup', 'nosuch:sub']).split(' ')[0],
        out(['--cgroup', 'memory:missing']).split(' ')[0],
      ];
    }
    t.same(seenBy.tsrun, seenBy.reference, 'the same placement and the same refusals');
    t.match(seenBy.tsrun[0], /^0 .*:memory:\/.*\/sub .*:cpu:\/.*\/sub/, 'memory and cpu in their sub-cgroups');
    t.match(seenBy.tsrun[1], /:pids:\/ID/, "the controllers not named stay in the container's own");
  },
);

t.test('a created container: paused and resumed, as runc does; start and exec refuse it meanwhile', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const id = uniqueId('pausecreated');
  cleanupBoth(t, bundle, id);
  const steps: Record<string, unknown[]> = {};
  for (const rt of RUNTIMES) {
    const seen: unknown[] = [];
    const step = (args: string[]) =>
      seen.push(`${args[0]}: ${under(rt, bundle, id, args, { timeoutMs: 20_000 }).status}`, status(rt, bundle, id));
    t.equal(under(rt, bundle, id, ['create', '-b', bundle.dir, '%ID%']).status, 0, `${rt.name}: create`);
    step(['pause', '%ID%']);
    step(['resume', '%ID%']);
    step(['pause', '%ID%']);
    step(['exec', '%ID%', '/bin/true']);
    step(['start', '%ID%']);
    step(['resume', '%ID%']);
    step(['start', '%ID%']);
    step(['delete', '--force', '%ID%']);
    steps[rt.name] = seen;
  }
  t.same(steps.tsrun, steps.reference, 'every step and state as under the reference');
  t.same(steps.tsrun.slice(0, 4), ['pause: 0', 'paused', 'resume: 0', 'created']);
});

t.test("no cgroupsPath: the container goes below the caller's own cgroup, as runc puts it", async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
      delete c.linux!.cgroupsPath;
    },
    ['/bin/cat', '/proc/self/cgroup'],
  );
  const id = uniqueId('placed');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  const normal = (rt: (typeof RUNTIMES)[number]) => r[rt.name].stdout.split(idFor(rt, id)).join('ID');
  t.equal(normal(RUNTIMES[1]), normal(RUNTIMES[0]), 'the same cgroup in every hierarchy');
  const own = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(':'));
  for (const [, controllers, cg] of own) {
    t.match(
      normal(RUNTIMES[1]),
      `:${controllers}:${path.posix.join(cg, 'ID')}\n`,
      `${controllers || 'cgroup2'}: below ${cg}`,
    );
  }
});

t.test('a terminal with nothing to attach it to fails at once; with a terminal it runs, under both', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.process!.terminal = true;
    },
    ['/bin/sh', '-c', 'echo on-a-tty; tty'],
  );
  const id = uniqueId('noterm');
  cleanupBoth(t, bundle, id);
  const outputs: Record<string, string> = {};
  for (const rt of RUNTIMES) {
    // setsid: no controlling terminal; stdio are files.
    const r = runCommand(
      ['setsid', '-w', rt.bin, '--root', `${bundle.root}-${rt.name}`, 'run', '-b', bundle.dir, idFor(rt, id)],
      { timeoutMs: 20_000 },
    );
    t.same(
      { status: r.status, signal: r.signal },
      { status: 1, signal: null },
      `${rt.name}: refused at once: ${r.stderr.trim()}`,
    );
    t.notMatch(r.stdout, /on-a-tty/, `${rt.name}: nothing ran`);
    const onTty = runCommand(
      [
        'script',
        '-qfec',
        `${rt.bin} --root ${bundle.root}-${rt.name} run -b ${bundle.dir} ${idFor(rt, id)}-2`,
        '/dev/null',
      ],
      { timeoutMs: 20_000 },
    );
    t.equal(onTty.status, 0, `${rt.name}: on a terminal: ${onTty.stderr}`);
    // One "\r\n" a line: the container's pty does not translate again what ours does (runc clears ONLCR too).
    // "^@": script's pty echoing the NUL it may send at its stdin's EOF, under either runtime.
    const shown = onTty.stdout.replace(/\^@/g, '');
    outputs[rt.name] = shown.replace(/\d+/g, 'N');
    t.match(shown, /on-a-tty\r\n\/dev\/pts\/\d+\r\n/, `${rt.name}: the process runs on a pty`);
    under(rt, bundle, `${id}`, ['delete', '--force', `${idFor(rt, id)}-2`]);
  }
  t.equal(outputs.tsrun, outputs.reference, 'what the terminal shows, as under the reference');
});

t.test('--console-socket: needs a terminal; the pty master arrives named "/dev/ptmx", as runc names it', async (t) => {
  const plain = makeBundle(t, () => {}, ['/bin/true']);
  const pid = uniqueId('csplain');
  cleanupBoth(t, plain, pid);
  const socketPath = path.join(plain.dir, 'console.sock');
  const listener = native.listenUnix(socketPath);
  t.teardown(() => native.close(listener));
  const r = underBoth(plain, pid, ['create', '--console-socket', socketPath, '-b', plain.dir, '%ID%']);
  t.same(
    { reference: r.reference.status, tsrun: r.tsrun.status },
    { reference: 1, tsrun: 1 },
    'terminal false: refused by both',
  );
  t.match(r.tsrun.stderr, /--console-socket: the process has no terminal/);

  const tty = makeBundle(
    t,
    (c) => {
      c.process!.terminal = true;
    },
    ['/bin/true'],
  );
  const tid = uniqueId('csname');
  cleanupBoth(t, tty, tid);
  const names: Record<string, string> = {};
  for (const rt of RUNTIMES) {
    t.equal(
      under(rt, tty, tid, ['create', '--console-socket', socketPath, '-b', tty.dir, '%ID%']).status,
      0,
      `${rt.name}: create`,
    );
    const conn = native.acceptUnix(listener, 5_000);
    const { fd, name } = native.recvFdNamed(conn, 5_000);
    native.close(conn);
    native.close(fd);
    names[rt.name] = name;
  }
  t.equal(names.tsrun, names.reference, `the name sent with the fd: ${JSON.stringify(names.reference)}`);
  t.equal(names.tsrun, '/dev/ptmx');
});

t.test("events --stats: runc's shape (field names, what is left out), 64-bit counters exact", async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', 'cat /bin/busybox > /dev/null; sleep 1000']);
  const id = uniqueId('stats');
  cleanupBoth(t, bundle, id);
  const stats: Record<string, any> = {};
  const text: Record<string, string> = {};
  for (const rt of RUNTIMES) {
    t.equal(under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status, 0, `${rt.name}: run --detach`);
    const r = under(rt, bundle, id, ['events', '--stats', '%ID%']);
    t.equal(r.status, 0, `${rt.name}: events --stats: ${r.stderr}`);
    text[rt.name] = r.stdout;
    stats[rt.name] = JSON.parse(r.stdout);
  }
  const keys = (o: unknown) => (o && typeof o === 'object' ? Object.keys(o).sort() : o);
  for (const section of [
    '',
    'cpu',
    'cpu.usage',
    'cpuset',
    'memory.usage',
    'memory.swap',
    'memory.kernel',
    'memory.kernelTCP',
    'pids',
    'intel_rdt',
    'network_interfaces',
  ]) {
    const pick = (s: any) =>
      section
        .split('.')
        .filter(Boolean)
        .reduce((o, k) => o?.[k], s.data);
    t.same(
      keys(pick(stats.tsrun)),
      keys(pick(stats.reference)),
      `data${section ? `.${section}` : ''}: the same fields`,
    );
  }
  t.same(
    Object.keys(stats.tsrun.data.memory.raw),
    Object.keys(stats.tsrun.data.memory.raw).sort(),
    'memory.raw keys sorted, as Go prints a map',
  );
  if (hybridOrV1) {
    // v1's "no limit" is 2^63 - 4096 rounded to a page: a double would print 9223372036854772000.
    t.match(text.tsrun, /"limit":9223372036854771712[,}]/, 'the v1 no-limit value, digit for digit');
    t.notMatch(text.tsrun, /9223372036854772000/);
  }
});

t.test(
  'a failing poststart hook: start fails, the container is stopped and deleted, poststop runs once (runtime-spec; runc 1.2+)',
  async (t) => {
    differsOnPurpose(t, 'poststart-at-start');
    const dir = fs.mkdtempSync('/tmp/tsrun-poststart-');
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const outcome: Record<string, Record<string, unknown>> = {};
    for (const rt of RUNTIMES) {
      const bundle = makeBundle(
        t,
        (c) => {
          c.hooks = {
            poststart: [{ path: '/bin/false' }],
            poststop: [{ path: '/bin/sh', args: ['sh', '-c', `echo poststop >> ${dir}/${rt.name}`] }],
          };
        },
        ['/bin/sleep', '1000'],
      );
      const id = uniqueId('poststartfail');
      cleanupBoth(t, bundle, id);
      const created = under(rt, bundle, id, ['create', '-b', bundle.dir, '%ID%']);
      const start = under(rt, bundle, id, ['start', '%ID%']);
      const state = under(rt, bundle, id, ['state', '%ID%']);
      outcome[rt.name] = {
        create: created.status,
        start: start.status,
        stateAfter: state.status,
        poststop: fs.existsSync(path.join(dir, rt.name)) ? fs.readFileSync(path.join(dir, rt.name), 'utf8') : '',
      };
    }
    t.same(
      outcome.tsrun,
      { create: 0, start: 1, stateAfter: 1, poststop: 'poststop\n' },
      'create succeeds; start fails; the container is gone; poststop ran once',
    );
    t.equal(outcome.reference.create, 1, 'runc 1.1.5 runs poststart hooks at the end of create, and fails create');
  },
);
