/**
 * cgroups on this host's layout (v1 controllers, plus cgroup2 at
 * /sys/fs/cgroup/unified on hybrid hosts): limits written and really
 * enforced, pause/resume, ps, kill --all, and no cgroup left behind in any
 * hierarchy.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';

// tap's Test type, as its test callbacks receive it.
type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: any[]) => any>>[0];
import { detectLayout, readHierarchies } from '../../src/lib/cgroup/manager';
import { type Config } from '../../src/lib/config';
import { differsOnPurpose } from '../compat-helpers';
import {
  cleanupContainer,
  defaultCgroupDirs,
  IS_ROOT,
  leftovers,
  makeBundle,
  TSRUN,
  tsrun,
  uniqueId,
  waitFor,
} from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const hierarchies = readHierarchies();
const isV2 = detectLayout(hierarchies) === 'unified';
const v1 = (controller: string): string | undefined =>
  hierarchies.find((h) => h.version === 1 && h.controllers.includes(controller))?.mountPoint;
if (!isV2 && !v1('memory')) {
  t.plan(0, 'this host has no memory controller to test with');
  process.exit(0);
}

/** The container's directory in the hierarchy mounted at `mountPoint` (no cgroupsPath: below our own cgroup). */
function dirIn(mountPoint: string, id: string): string {
  return defaultCgroupDirs(id).find((d) => d === mountPoint || d.startsWith(`${mountPoint}/`))!;
}

/** A knob of the container's cgroup: the v1 file in its controller's hierarchy, or the v2 file. */
function knob(id: string, controller: string, v1File: string, v2File: string): string {
  return isV2 ? path.join(dirIn('/sys/fs/cgroup', id), v2File) : path.join(dirIn(v1(controller)!, id), v1File);
}

function readKnob(id: string, controller: string, v1File: string, v2File: string): string {
  return fs.readFileSync(knob(id, controller, v1File, v2File), 'utf8').trim();
}

/** Every hierarchy's directory for a cgroup path, existing or not. */
function cgroupDirs(cgPath: string): string[] {
  return hierarchies.map((h) => path.join(h.mountPoint, cgPath));
}

function noCgroupLeft(t: TapTest, cgPath: string): void {
  // "/<id>": also where a container without cgroupsPath goes, below our own cgroup.
  const id = /^\/[^/]+$/.test(cgPath) ? cgPath.slice(1) : undefined;
  const dirs = [...cgroupDirs(cgPath), ...(id ? defaultCgroupDirs(id) : [])];
  t.same(
    dirs.filter((d) => fs.existsSync(d)),
    [],
    `no cgroup ${cgPath} in any hierarchy`,
  );
}

function read(dir: string, file: string): string {
  return fs.readFileSync(path.join(dir, file), 'utf8').trim();
}

function detached(t: TapTest, mutate: (c: Config) => void, args: string[]) {
  const bundle = makeBundle(t, mutate, args);
  const id = uniqueId('cg');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]);
  t.equal(r.status, 0, `run --detach: ${r.stderr}`);
  return { bundle, id };
}

t.test('limits land in every controller, and delete removes the cgroups everywhere', async (t) => {
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.resources = {
        memory: { limit: 64 << 20, reservation: 32 << 20, swap: 64 << 20, ...(isV2 ? {} : { swappiness: 10 }) },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
        pids: { limit: 30 },
        blockIO: { weight: 0 },
      };
    },
    ['/bin/checker', 'sleep', '30'],
  );
  // v1 value, v2 value (runc's conversions: shares 512 -> weight 20; swap is memory+swap)
  const expected: Array<[string, string, string, string, string]> = [
    ['memory', 'memory.limit_in_bytes', 'memory.max', String(64 << 20), String(64 << 20)],
    ['memory', 'memory.soft_limit_in_bytes', 'memory.low', String(32 << 20), String(32 << 20)],
    ['memory', 'memory.memsw.limit_in_bytes', 'memory.swap.max', String(64 << 20), '0'],
    ['cpu', 'cpu.shares', 'cpu.weight', '512', '20'],
    ['cpu', 'cpu.cfs_quota_us', 'cpu.max', '50000', '50000 100000'],
    ['cpuset', 'cpuset.cpus', 'cpuset.cpus', '0', '0'],
    ['pids', 'pids.max', 'pids.max', '30', '30'],
  ];
  for (const [controller, v1File, v2File, v1Value, v2Value] of expected) {
    t.equal(readKnob(id, controller, v1File, v2File), isV2 ? v2Value : v1Value, isV2 ? v2File : v1File);
  }
  if (!isV2) t.equal(read(dirIn(v1('memory')!, id), 'memory.swappiness'), '10');
  const state = JSON.parse(tsrun(bundle.root, ['state', id]).stdout);
  for (const dir of defaultCgroupDirs(id))
    t.ok(read(dir, 'cgroup.procs').split('\n').includes(String(state.pid)), `the init is in ${dir}`);
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  noCgroupLeft(t, `/${id}`);
  t.same(leftovers(bundle, id), []);
});

t.test('a memory hog is OOM-killed: run exits 137', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.resources = { memory: { limit: 16 << 20, swap: 16 << 20 } };
    },
    ['/bin/sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
  );
  const id = uniqueId('oom');
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.equal(r.status, 137, 'killed by SIGKILL');
  t.notMatch(r.stdout, /survived/);
  noCgroupLeft(t, `/${id}`);
});

t.test('pids.limit makes fork fail', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.resources = { pids: { limit: 4 } };
    },
    ['/bin/sh', '-c', 'for i in 1 2 3 4 5 6; do sleep 2 & done; echo all forked'],
  );
  const id = uniqueId('pids');
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.not(r.status, 0, 'the shell fails');
  t.match(r.stderr, /can't fork/, 'because fork failed');
  t.notMatch(r.stdout, /all forked/);
  noCgroupLeft(t, `/${id}`);
});

t.test('device rules allow and deny for real', async (t) => {
  // fuse: not in runc's default allow-list (tun is), and opening it needs no mount.
  const fuse = { path: '/dev/fuse', type: 'c' as const, major: 10, minor: 229, fileMode: 0o666 };
  for (const allowed of [false, true]) {
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.devices = [fuse];
        c.linux!.resources = {
          devices: [
            { allow: false, access: 'rwm' },
            ...(allowed ? [{ allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }] : []),
          ],
        };
      },
      // Opened only: fuse refuses a read or write on a connection not mounted.
      ['/bin/sh', '-c', 'exec 3<>/dev/fuse && echo opened'],
    );
    const id = uniqueId('dev');
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    // Past the devices cgroup, a host without the fuse module (the v2 VM) says ENODEV.
    if (allowed)
      t.ok(r.stdout === 'opened\n' || /No such device/.test(r.stderr), `an allowed device opens: ${r.stderr}`);
    else
      t.match(
        r.stderr,
        /can't create \/dev\/fuse: Operation not permitted/,
        'a device outside the allow-list cannot be opened',
      );
    noCgroupLeft(t, `/${id}`);
  }
});

t.test(
  'update -r with device rules: applied, the container frozen meanwhile (no open of /dev/null refused)',
  async (t) => {
    differsOnPurpose(t, 'update-devices');
    const fuse = { path: '/dev/fuse', type: 'c' as const, major: 10, minor: 229, fileMode: 0o666 };
    const { bundle, id } = detached(
      t,
      (c) => {
        c.root!.readonly = false;
        c.linux!.devices = [fuse];
        c.linux!.resources = { devices: [{ allow: false, access: 'rwm' }] };
      },
      ['/bin/sh', '-c', 'while :; do cat /dev/null 2>/dev/null || echo refused >>/refused; done'],
    );
    const opens = () => tsrun(bundle.root, ['exec', id, '/bin/sh', '-c', 'exec 3<>/dev/fuse && echo opened']);
    t.match(opens().stderr, /Operation not permitted/, 'fuse is not allowed at first');
    const rules = JSON.stringify({
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
      ],
    });
    // Each update writes the rules from "deny everything" up: unfrozen, the loop meets a refusal.
    for (let i = 0; i < 30; i++) {
      const r = tsrun(bundle.root, ['update', '--resources', '-', id], { input: rules });
      t.equal(r.status, 0, r.stderr);
    }
    const after = opens();
    t.ok(after.stdout === 'opened\n' || /No such device/.test(after.stderr), `fuse is allowed now: ${after.stderr}`);
    const seen = tsrun(bundle.root, ['exec', id, '/bin/sh', '-c', 'cat /refused 2>/dev/null | wc -l']);
    t.equal(seen.stdout.trim(), '0', 'the loop never met a refused /dev/null');
    const state = tsrun(bundle.root, ['state', id]);
    t.equal(JSON.parse(state.stdout).status, 'running', 'and it runs on, thawed');
  },
);

t.test('a default device named in linux.devices: its rule left out at create and at update -r, as runc', async (t) => {
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.devices = [{ path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666 }];
      c.linux!.resources = { devices: [{ allow: false, access: 'rwm' }] };
    },
    ['/bin/sleep', '1000'],
  );
  const opens = (dev: string) => tsrun(bundle.root, ['exec', id, '/bin/sh', '-c', `exec 3<>${dev} && echo opened`]);
  t.match(opens('/dev/full').stderr, /Operation not permitted/, 'the config replaced /dev/full and allowed it nothing');
  t.equal(opens('/dev/zero').stdout, 'opened\n', 'the other defaults stay');
  const rules = JSON.stringify({ devices: [{ allow: false, access: 'rwm' }] });
  const r = tsrun(bundle.root, ['update', '--resources', '-', id], { input: rules });
  t.equal(r.status, 0, r.stderr);
  t.match(opens('/dev/full').stderr, /Operation not permitted/, 'update wrote the same defaults');
  t.equal(opens('/dev/zero').stdout, 'opened\n');
});

t.test('pause freezes, resume thaws; ps lists exactly the container; kill --all leaves none', async (t) => {
  const { bundle, id } = detached(t, () => {}, [
    '/bin/sh',
    '-c',
    'sleep 60 & i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; done',
  ]);
  const counter = path.join(bundle.rootfs, 'tmp', 'counter');
  const value = (): number => Number(fs.readFileSync(counter, 'utf8').trim() || 0);
  t.ok(await waitFor(() => fs.existsSync(counter) && value() > 0), 'the counter runs');

  const ps = JSON.parse(tsrun(bundle.root, ['ps', '--format', 'json', id]).stdout) as number[];
  t.equal(ps.length, 2, 'sh and sleep');
  const table = tsrun(bundle.root, ['ps', id]).stdout.trim().split('\n');
  t.match(table[0], /PID/);
  t.equal(table.length, 3, 'header plus the two processes');

  t.equal(tsrun(bundle.root, ['pause', id]).status, 0);
  t.equal(JSON.parse(tsrun(bundle.root, ['state', id]).stdout).status, 'paused');
  const frozen = value();
  await new Promise((r) => setTimeout(r, 300));
  t.equal(value(), frozen, 'the counter stands still while paused');
  t.not(tsrun(bundle.root, ['pause', id]).status, 0, 'pausing twice fails');
  t.equal(tsrun(bundle.root, ['resume', id]).status, 0);
  t.ok(await waitFor(() => value() > frozen), 'the counter moves again');
  t.equal(JSON.parse(tsrun(bundle.root, ['state', id]).stdout).status, 'running');
  t.not(tsrun(bundle.root, ['resume', id]).status, 0, 'resuming a running container fails');

  t.equal(tsrun(bundle.root, ['kill', '--all', id, 'KILL']).status, 0);
  t.ok(
    await waitFor(() =>
      ps.every((pid) => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')),
    ),
    'every process is gone',
  );
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0);
  noCgroupLeft(t, `/${id}`);
});

t.test('delete --force of a paused container works and leaves nothing', async (t) => {
  const { bundle, id } = detached(t, () => {}, ['/bin/checker', 'sleep', '30']);
  t.equal(tsrun(bundle.root, ['pause', id]).status, 0);
  t.not(tsrun(bundle.root, ['delete', id]).status, 0, 'a paused container is not stopped');
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  noCgroupLeft(t, `/${id}`);
  t.same(leftovers(bundle, id), []);
});

t.test('cgroupsPath: absolute and relative placement; systemd paths are refused', async (t) => {
  const base = uniqueId('cgp');
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.cgroupsPath = `/${base}/inner`;
    },
    ['/bin/checker', 'sleep', '30'],
  );
  t.ok(
    fs.existsSync(isV2 ? path.join('/sys/fs/cgroup', base, 'inner') : path.join(v1('pids')!, base, 'inner')),
    'an absolute path is below the hierarchy root',
  );
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  noCgroupLeft(t, `/${base}/inner`);
  for (const dir of cgroupDirs(`/${base}`)) if (fs.existsSync(dir)) fs.rmdirSync(dir); // the parent is ours to remove

  const systemd = makeBundle(t, (c) => {
    c.linux!.cgroupsPath = 'system.slice:tsrun:abc';
  });
  const r = tsrun(systemd.root, ['run', '-b', systemd.dir, uniqueId()]);
  t.not(r.status, 0);
  t.match(r.stderr, /linux\.cgroupsPath: .*systemd/);
});

t.test('a resource the host lacks is an error naming it, and leaves nothing', async (t) => {
  if (v1('net_cls')) return t.pass('this host has net_cls: nothing to refuse');
  const reason = isV2 ? 'cgroup v2 has no net_cls/net_prio controllers' : 'this host has no net_cls cgroup controller';
  const bundle = makeBundle(t, (c) => {
    c.linux!.resources = { network: { classID: 1048577 } };
  });
  const id = uniqueId('nocls');
  const r = tsrun(bundle.root, ['create', '-b', bundle.dir, id]);
  t.not(r.status, 0);
  t.match(r.stderr, new RegExp(`^tsrun: create \\S+: linux\\.resources\\.network(\\.classID)?: ${reason}\n$`));
  noCgroupLeft(t, `/${id}`);
  t.same(leftovers(bundle, id), []);
});

t.test('update changes the limits of a running container (flags, -r FILE, -r - as engines send it)', async (t) => {
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.resources = { memory: { limit: 64 << 20 }, pids: { limit: 20 } };
    },
    ['/bin/checker', 'sleep', '30'],
  );
  const memLimit = (): string => readKnob(id, 'memory', 'memory.limit_in_bytes', 'memory.max');
  const pidsMax = (): string => readKnob(id, 'pids', 'pids.max', 'pids.max');
  const quota = (): string => readKnob(id, 'cpu', 'cpu.cfs_quota_us', 'cpu.max').split(' ')[0];

  let r = tsrun(bundle.root, [
    'update',
    '--memory',
    '128m',
    '--memory-swap',
    '256m',
    '--pids-limit',
    '50',
    '--cpu-quota',
    '20000',
    '--cpu-period',
    '100000',
    id,
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(memLimit(), String(128 << 20));
  t.equal(
    readKnob(id, 'memory', 'memory.memsw.limit_in_bytes', 'memory.swap.max'),
    String(isV2 ? 128 << 20 : 256 << 20),
    'swap (v2: the swap part alone)',
  );
  t.equal(pidsMax(), '50');
  t.equal(quota(), '20000');

  // podman's payload, from a file
  const file = path.join(bundle.dir, 'resources.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ memory: { limit: 134217728, swap: 268435456 }, cpu: { quota: 50000, period: 100000 } }),
  );
  r = tsrun(bundle.root, ['update', `--resources=${file}`, id]);
  t.equal(r.status, 0, r.stderr);
  t.equal(quota(), '50000');

  // containerd's payload, on stdin, with the zeros it sends for unset fields
  r = tsrun(bundle.root, ['update', '--resources', '-', id], {
    input: JSON.stringify({
      memory: { limit: 100663296, reservation: 0, swap: 268435456, kernel: 0 },
      cpu: { shares: 0, quota: 30000, period: 100000 },
      pids: { limit: 77 },
      blockIO: { weight: 0 },
    }),
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(memLimit(), '100663296');
  t.equal(pidsMax(), '77');
  t.equal(quota(), '30000');

  // checkBeforeUpdate refuses a limit below what the container already uses
  const tooLow = tsrun(bundle.root, ['update', '--resources', '-', id], {
    input: JSON.stringify({ memory: { limit: 4096, checkBeforeUpdate: true } }),
  });
  t.not(tooLow.status, 0);
  t.match(tooLow.stderr, /memory\.limit: 4096 is below the current usage \d+ \(checkBeforeUpdate\)/);
  t.equal(memLimit(), '100663296', 'the limit is unchanged');

  const bad = tsrun(bundle.root, ['update', '--resources', '-', id], { input: '{nope' });
  t.not(bad.status, 0);
  t.match(bad.stderr, /^tsrun: update \S+: --resources -: invalid JSON/);
  t.match(tsrun(bundle.root, ['update', '--memory', 'lots', id]).stderr, /--memory: "lots" is not a size/);

  t.equal(tsrun(bundle.root, ['kill', id, 'KILL']).status, 0);
  t.ok(await waitFor(() => JSON.parse(tsrun(bundle.root, ['state', id]).stdout).status === 'stopped'));
  t.match(tsrun(bundle.root, ['update', '--pids-limit', '5', id]).stderr, /cannot update a stopped container/);
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0);
  noCgroupLeft(t, `/${id}`);
});

t.test("events: --stats in runc's shape; following reports an OOM kill, and ends with the container", async (t) => {
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.resources = { memory: { limit: 16 << 20, swap: 16 << 20 }, pids: { limit: 10 } };
    },
    ['/bin/sh', '-c', 'sleep 1; x=$(head -c 200000000 /dev/zero | tr "\\0" a)'],
  );
  const once = tsrun(bundle.root, ['events', '--stats', id]);
  t.equal(once.status, 0, once.stderr);
  const stats = JSON.parse(once.stdout);
  t.match(stats, {
    type: 'stats',
    id,
    // runc's omitempty: throttling counters appear once they are not zero.
    data: {
      cpu: { usage: { total: Number }, throttling: Object },
      memory: { usage: { limit: 16 << 20, usage: Number } },
      pids: { current: Number, limit: 10 },
    },
  });

  const followed = await new Promise<{ code: number | null; lines: any[] }>((resolve) => {
    const child = spawn(
      '/usr/bin/env',
      ['-i', `PATH=${process.env.PATH}`, TSRUN, '--root', bundle.root, 'events', '--interval', '500ms', id],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        lines: text
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      });
    });
  });
  t.equal(followed.code, 0, 'events ends by itself when the container stops');
  t.ok(
    followed.lines.some((e) => e.type === 'stats'),
    'stats were reported',
  );
  t.ok(
    followed.lines.some((e) => e.type === 'oom' && e.id === id),
    'the OOM kill was reported',
  );
  t.equal(tsrun(bundle.root, ['delete', id]).status, 0);
  noCgroupLeft(t, `/${id}`);
});

t.test('exec --cgroup joins an existing sub-cgroup: one path on v2, all or per controller on v1', async (t) => {
  const { bundle, id } = detached(t, () => {}, ['/bin/checker', 'sleep', '30']);
  if (!isV2) {
    // Not in every hierarchy: refused; in the memory one, per controller: joined there only.
    t.match(
      tsrun(bundle.root, ['exec', '--cgroup', 'sub', id, '/bin/true']).stderr,
      /--cgroup: sub is not an existing sub-cgroup/,
    );
    fs.mkdirSync(path.join(dirIn(v1('memory')!, id), 'sub'));
    const r = tsrun(bundle.root, ['exec', '--cgroup', 'memory:sub', id, '/bin/cat', '/proc/self/cgroup']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /:memory:\S*\/sub\n/, 'memory: the sub-cgroup');
    t.notMatch(r.stdout, /:pids:\S*\/sub/, "pids: the container's own");
  } else {
    const sub = path.join(dirIn('/sys/fs/cgroup', id), 'sub');
    t.match(tsrun(bundle.root, ['exec', '--cgroup', 'sub', id, '/bin/true']).stderr, /not an existing sub-cgroup/);
    // A process may not sit in an inner cgroup whose parent also holds processes with controllers on:
    // the sub-cgroup is a leaf, and the init stays in the container's own cgroup, as with runc.
    fs.mkdirSync(sub);
    const r = tsrun(bundle.root, ['exec', '--cgroup', 'sub', id, '/bin/sh', '-c', 'cat /proc/self/cgroup']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /sub/);
  }
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  noCgroupLeft(t, `/${id}`);
});

t.test('a CPU quota shows as throttling in the stats', async (t) => {
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.resources = { cpu: { quota: 10000, period: 100000 } };
    },
    ['/bin/sh', '-c', 'while :; do :; done'],
  );
  let throttled = 0;
  t.ok(
    await waitFor(
      () => {
        const stats = JSON.parse(tsrun(bundle.root, ['events', '--stats', id]).stdout);
        throttled = stats.data.cpu.throttling.throttledPeriods;
        return throttled > 0;
      },
      20_000,
      500,
    ),
    `throttled periods: ${throttled}`,
  );
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});

t.test('hugepageLimits land in the hugetlb controller, wherever the host has it', async (t) => {
  const hugetlb = hierarchies.find((h) => h.controllers.includes('hugetlb'));
  if (!hugetlb || !fs.existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB'))
    return t.pass('no hugetlb controller or 2MB pages here');
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.resources = { hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] };
    },
    ['/bin/checker', 'sleep', '30'],
  );
  const file = hugetlb.version === 2 ? 'hugetlb.2MB.max' : 'hugetlb.2MB.limit_in_bytes';
  t.equal(
    fs.readFileSync(path.join(dirIn(hugetlb.mountPoint, id), file), 'utf8').trim(),
    String(4 << 20),
    `${dirIn(hugetlb.mountPoint, id)}/${file}`,
  );
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});

t.test(
  'unified: raw cgroup2 keys are written on a cgroup2 host; a v1 or hybrid host refuses them, as runc',
  async (t) => {
    const cgroup2Only = hierarchies.every((h) => h.version === 2);
    if (cgroup2Only) {
      const { bundle, id } = detached(
        t,
        (c) => {
          c.linux!.resources = { unified: { 'pids.max': '42' } };
        },
        ['/bin/checker', 'sleep', '30'],
      );
      const v2 = hierarchies.find((h) => h.version === 2)!;
      t.equal(fs.readFileSync(path.join(dirIn(v2.mountPoint, id), 'pids.max'), 'utf8').trim(), '42');
      t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
      t.same(leftovers(bundle, id), []);
      const bad = makeBundle(t, (c) => {
        c.linux!.resources = { unified: { '../escape': '1' } };
      });
      const r = tsrun(bad.root, ['create', '-b', bad.dir, uniqueId()]);
      t.match(r.stderr, /linux\.resources\.unified: "\.\.\/escape" is not a cgroup2 file name/);
    } else {
      for (const key of ['pids.max', 'hugetlb.2MB.max', '../escape']) {
        const bundle = makeBundle(t, (c) => {
          c.linux!.resources = { unified: { [key]: '42' } };
        });
        const id = uniqueId('unified');
        const r = tsrun(bundle.root, ['create', '-b', bundle.dir, id]);
        t.not(r.status, 0, `${key}: refused`);
        t.match(r.stderr, /linux\.resources\.unified: cannot be used on a cgroup v1 host/, r.stderr.trim());
        t.same(leftovers(bundle, id), []);
      }
    }
  },
);

t.test('blockIO throttles are written for a real device', async (t) => {
  const disk = fs.readdirSync('/sys/block').find((d) => !d.startsWith('loop') && !d.startsWith('ram'));
  if (!disk) return t.pass('no block device here');
  const [major, minor] = fs.readFileSync(`/sys/block/${disk}/dev`, 'utf8').trim().split(':').map(Number);
  const { bundle, id } = detached(
    t,
    (c) => {
      c.linux!.resources = {
        blockIO: {
          throttleReadBpsDevice: [{ major, minor, rate: 1048576 }],
          throttleWriteIOPSDevice: [{ major, minor, rate: 100 }],
        },
      };
    },
    ['/bin/checker', 'sleep', '30'],
  );
  const got = isV2
    ? fs.readFileSync(path.join(dirIn('/sys/fs/cgroup', id), 'io.max'), 'utf8')
    : fs.readFileSync(path.join(v1('blkio')!, id, 'blkio.throttle.read_bps_device'), 'utf8') +
      fs.readFileSync(path.join(v1('blkio')!, id, 'blkio.throttle.write_iops_device'), 'utf8');
  t.match(
    got,
    isV2
      ? new RegExp(`${major}:${minor} rbps=1048576 wbps=max riops=max wiops=100`)
      : new RegExp(`${major}:${minor} 1048576\\n${major}:${minor} 100`),
  );
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});
