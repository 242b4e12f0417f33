/**
 * Issue 15, item 2: process.scheduler, process.ioPriority,
 * process.execCPUAffinity, linux.personality and linux.memoryPolicy were
 * validated and then ignored (SCHED_IDLE showed policy 0 inside, LINUX32
 * personality 0, affinity "0" Cpus_allowed 0-1).  runtime-spec says a
 * runtime applies them or fails.
 *
 * runc 1.1.5 predates all five and ignores them too, so the values are
 * checked against runtime-spec 1.3 and runc 1.2-1.4's documented
 * behaviour (docs/differences-from-runc.md, "newer-process-attributes"),
 * read back inside by the checker (sched_getattr, ioprio_get,
 * personality, get_mempolicy, sched_getaffinity).  Both runtimes run each
 * config, so tsrun is shown to accept every config runc accepts.
 */
import * as os from 'os';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { IS_ROOT, leftovers, makeBundle, tsrun, uniqueId } from '../helpers';
import { cleanupBoth, differsOnPurpose, referenceInstalled, RUNTIMES, under, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

/** The kernel's numbers (include/uapi/linux/sched.h, ioprio.h, personality.h, mempolicy.h). */
const SCHED_BATCH = 3;
const SCHED_IDLE = 5;
const IOPRIO_CLASS_BE = 2;
const IOPRIO_CLASS_IDLE = 3;
const PER_LINUX32 = 0x0008;
const MPOL_BIND = 2;
const MPOL_INTERLEAVE = 3;
const MPOL_F_STATIC_NODES = 1 << 15;
const ALL_CPUS = os.cpus().length > 1 ? `0-${os.cpus().length - 1}` : '0';

function attributes(report: any): Record<string, unknown> {
  return {
    policy: report.scheduler?.policy,
    nice: report.scheduler?.nice,
    io: report.ioPriority,
    personality: report.personality,
    memoryPolicy: report.memoryPolicy,
  };
}

const FIRST = (c: Config): void => {
  c.process!.scheduler = { policy: 'SCHED_BATCH', nice: 5 };
  c.process!.ioPriority = { class: 'IOPRIO_CLASS_IDLE', priority: 7 };
  c.linux!.personality = { domain: 'LINUX32' };
  c.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0' };
};
const FIRST_SEEN = {
  policy: SCHED_BATCH,
  nice: 5,
  io: { class: IOPRIO_CLASS_IDLE, level: 7 },
  personality: PER_LINUX32,
  memoryPolicy: { mode: MPOL_BIND, nodes: '0' },
};

t.test('run: the init gets the scheduler, I/O priority, personality and memory policy asked for', async (t) => {
  differsOnPurpose(t, 'newer-process-attributes');
  const cases: Array<[string, (c: Config) => void, Record<string, unknown>]> = [
    ['batch, idle I/O, LINUX32, bind', FIRST, FIRST_SEEN],
    [
      'idle, best-effort I/O, LINUX, interleave with static nodes',
      (c) => {
        c.process!.scheduler = { policy: 'SCHED_IDLE' };
        c.process!.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 3 };
        c.linux!.personality = { domain: 'LINUX' };
        c.linux!.memoryPolicy = { mode: 'MPOL_INTERLEAVE', nodes: '0', flags: ['MPOL_F_STATIC_NODES'] };
      },
      {
        policy: SCHED_IDLE,
        nice: 0,
        io: { class: IOPRIO_CLASS_BE, level: 3 },
        personality: 0,
        memoryPolicy: { mode: MPOL_INTERLEAVE | MPOL_F_STATIC_NODES, nodes: '0' },
      },
    ],
  ];
  for (const [label, mutate, expected] of cases) {
    const bundle = makeBundle(t, mutate, ['/bin/checker']);
    const id = uniqueId('attrs');
    cleanupBoth(t, bundle, id);
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.equal(r.reference.status, 0, `${label}: the reference runs it: ${r.reference.stderr}`);
    t.equal(r.tsrun.status, 0, `${label}: tsrun runs it: ${r.tsrun.stderr}`);
    t.same(attributes(JSON.parse(r.tsrun.stdout)), expected, `${label}: as asked`);
  }
});

t.test('LINUX32: uname says a 32-bit machine, as runtime-spec says', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.personality = { domain: 'LINUX32' };
    },
    ['/bin/uname', '-m'],
  );
  const id = uniqueId('linux32');
  cleanupBoth(t, bundle, id);
  const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout.trim(), /^i[3-6]86$/, `uname -m: ${r.stdout.trim()}`);
});

t.test('SCHED_FIFO needs realtime time in the cgroup; with it, it runs', async (t) => {
  const fifo = makeBundle(
    t,
    (c) => {
      c.process!.scheduler = { policy: 'SCHED_FIFO', priority: 10 };
    },
    ['/bin/checker'],
  );
  const id = uniqueId('fifo');
  cleanupBoth(t, fifo, id);
  const refused = under(RUNTIMES[1], fifo, id, ['run', '-b', fifo.dir, '%ID%']);
  t.not(refused.status, 0, 'the cgroup has no realtime runtime: refused');
  t.match(refused.stderr, /process\.scheduler: .*operation not permitted/, `names the field: ${refused.stderr}`);
  t.same(leftovers({ ...fifo, root: `${fifo.root}-tsrun` }, `${id}-tsrun`), [], 'nothing left');

  const granted = makeBundle(
    t,
    (c) => {
      c.process!.scheduler = { policy: 'SCHED_FIFO', priority: 10 };
      c.linux!.resources = { ...c.linux!.resources, cpu: { realtimeRuntime: 10000, realtimePeriod: 1000000 } };
    },
    ['/bin/checker'],
  );
  const gid = uniqueId('fifook');
  cleanupBoth(t, granted, gid);
  const r = under(RUNTIMES[1], granted, gid, ['run', '-b', granted.dir, '%ID%']);
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout).scheduler, { policy: 1, priority: 10 });

  const deadline = makeBundle(
    t,
    (c) => {
      c.process!.scheduler = {
        policy: 'SCHED_DEADLINE',
        runtime: 10_000_000,
        deadline: 30_000_000,
        period: 30_000_000,
      };
      c.linux!.resources = { ...c.linux!.resources, cpu: { cpus: '0' } };
    },
    ['/bin/checker'],
  );
  const did = uniqueId('deadline');
  cleanupBoth(t, deadline, did);
  const d = under(RUNTIMES[1], deadline, did, ['run', '-b', deadline.dir, '%ID%']);
  t.not(d.status, 0, 'SCHED_DEADLINE in a cpuset smaller than the machine: refused by the kernel');
  t.match(
    d.stderr,
    /process\.scheduler: cannot be used together with linux\.resources\.cpu\.cpus/,
    `says why, as runc does: ${d.stderr}`,
  );
});

t.test(
  "exec: gets the container process's attributes, a --process file overrides them, execCPUAffinity applies",
  async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        FIRST(c);
        c.process!.execCPUAffinity = { initial: '0', final: '1' };
      },
      ['/bin/sleep', '1000'],
    );
    const id = uniqueId('attrx');
    cleanupBoth(t, bundle, id);
    for (const rt of RUNTIMES)
      t.equal(
        under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status,
        0,
        `${rt.name}: run --detach`,
      );
    const tsrunRoot = `${bundle.root}-tsrun`;
    const tid = `${id}-tsrun`;

    const flags = tsrun(tsrunRoot, ['exec', tid, '/bin/checker']);
    t.equal(flags.status, 0, flags.stderr);
    const seenByFlags = JSON.parse(flags.stdout);
    t.same(attributes(seenByFlags), FIRST_SEEN, "exec with flags: the container process's attributes");
    if (os.cpus().length > 1) t.equal(seenByFlags.cpuAffinity, '1', 'execCPUAffinity.final');

    const initReport = tsrun(tsrunRoot, ['exec', tid, '/bin/checker', 'read', '/proc/1/status']);
    t.match(
      JSON.parse(initReport.stdout).content,
      new RegExp(`Cpus_allowed_list:\\s+${ALL_CPUS}\\n`),
      'not applicable to the init: it keeps every CPU',
    );

    const processFile = bundle.dir + '/process.json';
    require('fs').writeFileSync(
      processFile,
      JSON.stringify({ args: ['/bin/checker'], cwd: '/', scheduler: { policy: 'SCHED_OTHER', nice: 2 } }),
    );
    const file = tsrun(tsrunRoot, ['exec', '--process', processFile, tid]);
    t.equal(file.status, 0, file.stderr);
    const seenByFile = JSON.parse(file.stdout);
    t.same(
      { policy: seenByFile.scheduler.policy, nice: seenByFile.scheduler.nice },
      { policy: 0, nice: 2 },
      "--process: the file's scheduler",
    );
    t.same(
      seenByFile.ioPriority,
      FIRST_SEEN.io,
      "--process: the container's I/O priority where the file names none, as runc's exec",
    );
    if (os.cpus().length > 1)
      t.equal(seenByFile.cpuAffinity, '1', "--process: the container's execCPUAffinity where the file names none");
  },
);

t.test('bad values: an error naming the field, before or at the syscall, and nothing left', async (t) => {
  const cases: Array<[string, (c: Config) => void, RegExp]> = [
    [
      'MPOL_BIND with no node',
      (c) => {
        c.linux!.memoryPolicy = { mode: 'MPOL_BIND' };
      },
      /linux\.memoryPolicy\.nodes: MPOL_BIND needs at least one node/,
    ],
    [
      'MPOL_LOCAL with a node',
      (c) => {
        c.linux!.memoryPolicy = { mode: 'MPOL_LOCAL', nodes: '0' };
      },
      /linux\.memoryPolicy\.nodes: must be empty for MPOL_LOCAL/,
    ],
    [
      'a node the machine does not have',
      (c) => {
        c.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '7' };
      },
      /linux\.memoryPolicy: set mode 0x2: invalid argument/,
    ],
    [
      'a node past any mask',
      (c) => {
        c.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0-5000' };
      },
      /linux\.memoryPolicy\.nodes: NUMA node 5000 is out of range/,
    ],
    [
      'deadline times with SCHED_OTHER',
      (c) => {
        c.process!.scheduler = { policy: 'SCHED_OTHER', runtime: 5 };
      },
      /process\.scheduler\.runtime: can only be set for SCHED_DEADLINE/,
    ],
    [
      'a CPU list backwards',
      (c) => {
        c.process!.execCPUAffinity = { final: '3-1' };
      },
      /process\.execCPUAffinity\.final: "3-1" is a range that ends before it starts/,
    ],
  ];
  for (const [label, mutate, message] of cases) {
    const bundle = makeBundle(t, mutate, ['/bin/true']);
    const id = uniqueId('badattr');
    cleanupBoth(t, bundle, id);
    const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.not(r.status, 0, `${label}: refused`);
    t.match(r.stderr, message, `${label}: ${r.stderr.trim()}`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${label}: one line`);
    t.same(leftovers({ ...bundle, root: `${bundle.root}-tsrun` }, `${id}-tsrun`), [], `${label}: nothing left`);
  }

  const running = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const id = uniqueId('badaff');
  cleanupBoth(t, running, id);
  const root = `${running.root}-tsrun`;
  const tid = `${id}-tsrun`;
  t.equal(tsrun(root, ['run', '--detach', '-b', running.dir, tid]).status, 0);
  const missing = os.cpus().length + 3;
  for (const stage of ['initial', 'final']) {
    const processFile = `${running.dir}/affinity-${stage}.json`;
    require('fs').writeFileSync(
      processFile,
      JSON.stringify({ args: ['/bin/echo', 'ran'], cwd: '/', execCPUAffinity: { [stage]: String(missing) } }),
    );
    const e = tsrun(root, ['exec', '--process', processFile, tid]);
    t.not(e.status, 0, `${stage} on CPU ${missing}, which this machine lacks: refused`);
    t.match(
      e.stderr,
      new RegExp(`process\\.execCPUAffinity\\.${stage}: set CPU affinity: invalid argument`),
      e.stderr.trim(),
    );
    t.notMatch(e.stdout, /ran/, 'the program never ran');
  }
  t.equal(JSON.parse(tsrun(root, ['state', tid]).stdout).status, 'running', 'the container goes on');
});

t.test('linux.intelRdt without resctrl: refused by both; personality flags: a warning, as runc', async (t) => {
  const rdt = makeBundle(
    t,
    (c) => {
      c.linux!.intelRdt = { l3CacheSchema: 'L3:0=ff' };
    },
    ['/bin/true'],
  );
  const id = uniqueId('rdt');
  cleanupBoth(t, rdt, id);
  const r = underBoth(rdt, id, ['run', '-b', rdt.dir, '%ID%']);
  t.not(r.reference.status, 0, 'the reference refuses it');
  t.not(r.tsrun.status, 0, 'tsrun refuses it');
  t.match(
    r.tsrun.stderr,
    /linux\.intelRdt: Intel RDT is not available on this host \(resctrl is not mounted at \/sys\/fs\/resctrl\)/,
  );
  for (const rt of RUNTIMES)
    t.same(leftovers({ ...rdt, root: `${rdt.root}-${rt.name}` }, `${id}-${rt.name}`), [], `${rt.name}: nothing left`);

  const flags = makeBundle(
    t,
    (c) => {
      c.linux!.personality = { domain: 'LINUX', flags: ['ADDR_NO_RANDOMIZE'] };
    },
    ['/bin/true'],
  );
  const fid = uniqueId('perflags');
  cleanupBoth(t, flags, fid);
  const f = underBoth(flags, fid, ['run', '-b', flags.dir, '%ID%']);
  t.equal(f.tsrun.status, f.reference.status, 'runs under both');
  t.match(
    f.tsrun.stderr,
    /warning: linux\.personality\.flags: ADDR_NO_RANDOMIZE ignored/,
    'tsrun says the flag is not applied',
  );
});

t.test('features says what is applied', async (t) => {
  const features = JSON.parse(tsrun('/nonexistent-root', ['features']).stdout);
  t.same(
    features.linux.intelRdt,
    { enabled: false, schemata: false, monitoring: false },
    'intelRdt: refused, so not enabled',
  );
  t.same(features.linux.netDevices, { enabled: true });
  t.same(features.linux.memoryPolicy.modes.sort(), [
    'MPOL_BIND',
    'MPOL_DEFAULT',
    'MPOL_INTERLEAVE',
    'MPOL_LOCAL',
    'MPOL_PREFERRED',
    'MPOL_PREFERRED_MANY',
    'MPOL_WEIGHTED_INTERLEAVE',
  ]);
  t.same(features.linux.memoryPolicy.flags.sort(), [
    'MPOL_F_NUMA_BALANCING',
    'MPOL_F_RELATIVE_NODES',
    'MPOL_F_STATIC_NODES',
  ]);
});
