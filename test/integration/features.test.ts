/**
 * Feature tests: each one writes a config.json asking for one feature, runs
 * the checker in a real container and compares what the checker observed
 * with what the config asked for.  Every test also checks that the run left
 * nothing behind (state dir, mounts under the bundle, processes).
 *
 * Needs root.  Host-side fixtures (shared mounts, submounts, helper
 * processes) live in this test's own temp dirs and are removed at teardown.
 */
import t from 'tap';
import { type ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Config } from '../../src/lib/config';
import {
  type Bundle,
  IS_ROOT,
  type RunResult,
  cleanupContainer,
  leftovers,
  makeBundle,
  tsrun,
  uniqueId,
  waitFor,
  writeConfig,
} from '../helpers';

type Json = any;

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

// ---------------------------------------------------------------- helpers

interface Outcome {
  bundle: Bundle;
  id: string;
  result: RunResult;
}

/** A bundle whose process is `args`; `mutate` may use the bundle's paths. */
function bundleWith(t: tap.Test, args: string[], mutate: (c: Config, b: Bundle) => void = () => {}): Bundle {
  const bundle = makeBundle(t, () => {}, args);
  mutate(bundle.config, bundle);
  writeConfig(bundle.dir, bundle.config);
  return bundle;
}

/** `tsrun run` the bundle (attached) and check that nothing is left behind. */
function runBundle(t: tap.Test, bundle: Bundle, opts: { runArgs?: string[]; cwd?: string } = {}): Outcome {
  const id = uniqueId('feat');
  cleanupContainer(t, bundle.root, id);
  const result = tsrun(bundle.root, ['run', ...(opts.runArgs ?? []), '-b', bundle.dir, id], { cwd: opts.cwd });
  t.same(leftovers(bundle, id), [], 'nothing is left behind after the run');
  return { bundle, id, result };
}

/** The JSON lines the checker printed; throws (failing the test) with the output when they do not parse. */
function jsonLines(o: Outcome): Json[] {
  const lines = o.result.stdout.split('\n').filter((l) => l.trim() !== '');
  try {
    return lines.map((l) => JSON.parse(l));
  } catch {
    throw new Error(
      `checker output is not JSON (exit ${o.result.status}): ${o.result.stdout}\nstderr: ${o.result.stderr}`,
    );
  }
}

function expectSuccess(t: tap.Test, o: Outcome): void {
  t.equal(o.result.status, 0, `tsrun run exits 0 (stderr: ${o.result.stderr.trim()})`);
}

/** Run the checker as the container's process (pid 1) and return its report. */
function checker(
  t: tap.Test,
  mutate: (c: Config, b: Bundle) => void = () => {},
  checkerArgs: string[] = [],
  opts: { runArgs?: string[]; cwd?: string } = {},
): { report: Json; outcome: Outcome } {
  const bundle = bundleWith(t, ['/bin/checker', ...checkerArgs], mutate);
  const outcome = runBundle(t, bundle, opts);
  expectSuccess(t, outcome);
  const lines = jsonLines(outcome);
  if (lines.length !== 1) throw new Error(`expected one JSON report, got ${lines.length}: ${outcome.result.stdout}`);
  return { report: lines[0], outcome };
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Run several checker probes in one container, through busybox sh; each
 * probe is the checker's argv after /bin/checker.  Returns one result per probe.
 */
function probes(
  t: tap.Test,
  mutate: (c: Config, b: Bundle) => void,
  list: string[][],
  opts: { runArgs?: string[]; cwd?: string } = {},
): Json[] {
  const script = list.map((p) => ['/bin/checker', ...p].map(shq).join(' ')).join('; ');
  const bundle = bundleWith(t, ['/bin/sh', '-c', script], mutate);
  const outcome = runBundle(t, bundle, opts);
  expectSuccess(t, outcome);
  const lines = jsonLines(outcome);
  if (lines.length !== list.length) {
    throw new Error(
      `expected ${list.length} probe results, got ${lines.length}: ${outcome.result.stdout}\nstderr: ${outcome.result.stderr}`,
    );
  }
  return lines;
}

const hostNs = (type: string): string => fs.readlinkSync(`/proc/self/ns/${type}`);

function mountAt(report: Json, mountpoint: string): Json | undefined {
  const all = (report.mounts as Json[]).filter((m) => m.mountpoint === mountpoint);
  return all[all.length - 1]; // the top one, if stacked
}

const optionList = (m: Json | undefined): string[] => (m ? String(m.options).split(',') : []);
const superOptionList = (m: Json | undefined): string[] => (m ? String(m.superOptions).split(',') : []);

/** A directory outside any bundle, with a teardown that unmounts whatever was mounted under it. */
function hostDir(t: tap.Test, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => {
    const info = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4]);
    for (const mp of info.filter((m) => m && (m === dir || m.startsWith(dir + '/'))).reverse()) {
      spawnSync('umount', ['-l', mp]);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function hostMount(args: string[]): void {
  const r = spawnSync('mount', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount ${args.join(' ')}: ${r.stderr}`);
}

/** A host tree: top.txt, and a tmpfs submount at sub/ holding sub.txt. */
function treeWithSubmount(t: tap.Test): string {
  const dir = hostDir(t, 'tsrun-tree-');
  fs.writeFileSync(path.join(dir, 'top.txt'), 'top');
  fs.mkdirSync(path.join(dir, 'sub'));
  hostMount(['-t', 'tmpfs', '-o', 'size=1m', 'tsrun-sub', path.join(dir, 'sub')]);
  fs.writeFileSync(path.join(dir, 'sub', 'sub.txt'), 'sub');
  return dir;
}

/** Host mountinfo line fields for a mount point. */
function hostMountinfo(mountpoint: string): { optional: string } | undefined {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] === mountpoint) {
      const sep = f.indexOf('-', 6);
      return { optional: f.slice(6, sep).join(' ') };
    }
  }
  return undefined;
}

/** Spawn tsrun with stdio on files, for verbs (create) whose init keeps stdio open. */
function tsrunDetached(root: string, args: string[]): RunResult {
  return tsrun(root, args, { timeoutMs: 30_000 });
}

function uptime(text: string): number {
  return Number(text.trim().split(/\s+/)[0]);
}

// ---------------------------------------------------------------- namespaces

t.test('namespaces: a new pid namespace makes the process pid 1', async (t) => {
  const { report } = checker(t);
  t.equal(report.pid, 1, 'the container process is pid 1');
  t.equal(report.ppid, 0, 'and has no parent inside the namespace');
  t.not(report.namespaces.pid, hostNs('pid'), 'pid namespace differs from the host');
});

t.test("namespaces: uts, ipc, net, mount and cgroup are new; the ones not asked for are the host's", async (t) => {
  const { report } = checker(t, (c) => {
    c.linux!.namespaces = [
      { type: 'pid' },
      { type: 'uts' },
      { type: 'ipc' },
      { type: 'network' },
      { type: 'mount' },
      { type: 'cgroup' },
    ];
  });
  for (const [type, nsName] of [
    ['uts', 'uts'],
    ['ipc', 'ipc'],
    ['net', 'net'],
    ['mnt', 'mnt'],
    ['cgroup', 'cgroup'],
  ]) {
    t.match(report.namespaces[nsName], new RegExp(`^${type}:\\[\\d+\\]$`), `${type} namespace reported`);
    t.not(report.namespaces[nsName], hostNs(type), `${type} namespace differs from the host`);
  }
  t.equal(report.namespaces.user, hostNs('user'), "user namespace (not requested) is the host's");
  t.equal(report.namespaces.time, hostNs('time'), "time namespace (not requested) is the host's");
});

t.test("namespaces: the cgroup namespace is the host's when not requested", async (t) => {
  const { report } = checker(t, (c) => {
    c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
  });
  t.equal(report.namespaces.cgroup, hostNs('cgroup'));
});

t.test('namespaces: a time namespace applies linux.timeOffsets', async (t) => {
  const boottime = 10 * 86400;
  const monotonic = 3600;
  const before = uptime(fs.readFileSync('/proc/uptime', 'utf8'));
  const [report, up, offsets] = probes(
    t,
    (c) => {
      c.linux!.namespaces!.push({ type: 'time' });
      c.linux!.timeOffsets = { boottime: { secs: boottime, nanosecs: 0 }, monotonic: { secs: monotonic, nanosecs: 0 } };
    },
    [['report'], ['read', '/proc/uptime'], ['read', '/proc/self/timens_offsets']],
  );
  const after = uptime(fs.readFileSync('/proc/uptime', 'utf8'));
  t.not(report.namespaces.time, hostNs('time'), 'time namespace differs from the host');
  t.equal(up.code, null, 'read /proc/uptime');
  const inside = uptime(up.content);
  t.ok(
    inside >= before + boottime - 1 && inside <= after + boottime + 1,
    `uptime inside (${inside}) is the host's (${before}..${after}) plus the boottime offset ${boottime}`,
  );
  const table = String(offsets.content)
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
  t.same(
    table.find((r) => r[0] === 'boottime'),
    ['boottime', String(boottime), '0'],
    'timens_offsets shows the boottime offset',
  );
  t.same(
    table.find((r) => r[0] === 'monotonic'),
    ['monotonic', String(monotonic), '0'],
    'timens_offsets shows the monotonic offset',
  );
});

t.test('namespaces: a user namespace with uid/gid mappings', async (t) => {
  const [report, uidMap, gidMap] = probes(
    t,
    (c, b) => {
      // The remapped root must be able to reach the rootfs.
      fs.chmodSync(b.dir, 0o755);
      c.linux!.namespaces!.push({ type: 'user' });
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    },
    [['report'], ['read', '/proc/self/uid_map'], ['read', '/proc/self/gid_map']],
  );
  t.not(report.namespaces.user, hostNs('user'), 'user namespace differs from the host');
  t.equal(report.uid, 0, 'uid 0 inside');
  t.equal(report.gid, 0, 'gid 0 inside');
  const norm = (s: string | null): string => String(s).trim().split(/\s+/).join(' ');
  t.equal(norm(uidMap.content), '0 100000 65536', 'uid_map is the configured mapping');
  t.equal(norm(gidMap.content), '0 100000 65536', 'gid_map is the configured mapping');
});

t.test('namespaces: joining existing uts and net namespaces by path', async (t) => {
  const holder: ChildProcess = spawn('unshare', ['--uts', '--net', 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  const pid = holder.pid!;
  const ready = await waitFor(() => {
    try {
      return (
        fs.readlinkSync(`/proc/${pid}/ns/uts`) !== hostNs('uts') &&
        fs.readlinkSync(`/proc/${pid}/exe`).endsWith('/sleep')
      );
    } catch {
      return false;
    }
  });
  t.ok(ready, 'helper process is in its own uts and net namespaces');
  const name = `joined-${process.pid}`;
  const set = spawnSync('nsenter', ['-t', String(pid), '--uts', 'busybox', 'hostname', name], { encoding: 'utf8' });
  t.equal(set.status, 0, `set the helper's hostname (${set.stderr})`);
  const utsNs = fs.readlinkSync(`/proc/${pid}/ns/uts`);
  const netNs = fs.readlinkSync(`/proc/${pid}/ns/net`);

  const { report } = checker(t, (c) => {
    delete c.hostname;
    c.linux!.namespaces = c.linux!.namespaces!.map((n) => {
      if (n.type === 'uts') return { type: 'uts', path: `/proc/${pid}/ns/uts` };
      if (n.type === 'network') return { type: 'network', path: `/proc/${pid}/ns/net` };
      return n;
    });
  });
  t.equal(report.namespaces.uts, utsNs, 'the container is in the joined uts namespace');
  t.equal(report.namespaces.net, netNs, 'the container is in the joined net namespace');
  t.equal(report.hostname, name, "hostname is the joined namespace's");
  t.equal(fs.readlinkSync(`/proc/${pid}/ns/uts`), utsNs, 'the helper is still in its namespace');
});

// ---------------------------------------------------------------- hostname

t.test('hostname and domainname', async (t) => {
  const { report } = checker(t, (c) => {
    c.hostname = 'feature-host';
    c.domainname = 'feature.example';
  });
  t.equal(report.hostname, 'feature-host');
  t.equal(report.domainname, 'feature.example');
  t.not(os.hostname(), 'feature-host', 'the host keeps its name');
});

// ---------------------------------------------------------------- mounts

t.test('mounts: bind mounts of a file and a directory; ro bind is read-only', async (t) => {
  let hostFile = '';
  let rwDir = '';
  const [dirRead, fileRead, rwWrite, roWrite, report] = probes(
    t,
    (c, b) => {
      rwDir = path.join(b.dir, 'rw-dir');
      fs.mkdirSync(rwDir);
      fs.writeFileSync(path.join(rwDir, 'hello.txt'), 'from the host dir');
      const roDir = path.join(b.dir, 'ro-dir');
      fs.mkdirSync(roDir);
      fs.writeFileSync(path.join(roDir, 'ro.txt'), 'read only');
      hostFile = path.join(b.dir, 'file.txt');
      fs.writeFileSync(hostFile, 'from the host file');
      c.mounts!.push(
        { destination: '/mnt/rw', type: 'bind', source: rwDir, options: ['bind'] },
        { destination: '/etc/bound.txt', type: 'bind', source: hostFile, options: ['bind'] },
        { destination: '/mnt/ro', type: 'bind', source: roDir, options: ['bind', 'ro'] },
      );
    },
    [
      ['read', '/mnt/rw/hello.txt'],
      ['read', '/etc/bound.txt'],
      ['write', '/mnt/rw/hello.txt', 'written inside'],
      ['write', '/mnt/ro/ro.txt', 'must fail'],
      ['report'],
    ],
  );
  t.equal(dirRead.content, 'from the host dir', 'directory bind shows the host directory');
  t.equal(fileRead.content, 'from the host file', 'file bind shows the host file');
  t.equal(rwWrite.ok, true, 'a rw bind is writable');
  t.equal(fs.readFileSync(path.join(rwDir, 'hello.txt'), 'utf8'), 'written inside', 'and the write reaches the host');
  t.equal(roWrite.code, 'EROFS', 'writing through a ro bind fails with EROFS');
  t.ok(optionList(mountAt(report, '/mnt/ro')).includes('ro'), 'the ro bind is mounted ro');
  t.ok(optionList(mountAt(report, '/mnt/rw')).includes('rw'), 'the plain bind is mounted rw');
  t.ok(mountAt(report, '/etc/bound.txt'), 'the file bind is a mount point');
});

t.test('mounts: rbind brings submounts along, bind does not', async (t) => {
  const tree = treeWithSubmount(t);
  const [nonRec, rec, report] = probes(
    t,
    (c) => {
      c.mounts!.push(
        { destination: '/mnt/bind', type: 'bind', source: tree, options: ['bind'] },
        { destination: '/mnt/rbind', type: 'bind', source: tree, options: ['rbind'] },
      );
    },
    [['read', '/mnt/bind/sub/sub.txt'], ['read', '/mnt/rbind/sub/sub.txt'], ['report']],
  );
  t.equal(nonRec.code, 'ENOENT', 'bind: the submount is not there');
  t.equal(rec.content, 'sub', 'rbind: the submount is there');
  t.ok(mountAt(report, '/mnt/rbind/sub'), 'rbind: the submount is a mount point inside');
  t.notOk(mountAt(report, '/mnt/bind/sub'), 'bind: no submount inside');
});

t.test('mounts: rro makes an rbind read-only down to its submounts', async (t) => {
  const tree = treeWithSubmount(t);
  const [top, sub, report] = probes(
    t,
    (c) => {
      c.mounts!.push({ destination: '/mnt/rro', type: 'bind', source: tree, options: ['rbind', 'rro'] });
    },
    [['write', '/mnt/rro/top.txt', 'x'], ['write', '/mnt/rro/sub/sub.txt', 'x'], ['report']],
  );
  t.equal(top.code, 'EROFS', 'the top mount is read-only');
  t.equal(sub.code, 'EROFS', 'the submount is read-only too');
  t.ok(optionList(mountAt(report, '/mnt/rro')).includes('ro'), 'top mount options have ro');
  t.ok(optionList(mountAt(report, '/mnt/rro/sub')).includes('ro'), 'submount options have ro');
  t.equal(fs.readFileSync(path.join(tree, 'sub', 'sub.txt'), 'utf8'), 'sub', 'the host file is unchanged');
});

t.test('mounts: tmpfs with mode and size', async (t) => {
  const [st, report] = probes(
    t,
    (c) => {
      c.mounts!.push({ destination: '/mnt/tmp', type: 'tmpfs', source: 'tmpfs', options: ['mode=1770', 'size=1m'] });
    },
    [['stat', '/mnt/tmp'], ['report']],
  );
  t.equal(st.type, 'd');
  t.equal(st.mode, '1770', 'the tmpfs root has the configured mode');
  const m = mountAt(report, '/mnt/tmp');
  t.equal(m?.fstype, 'tmpfs');
  t.ok(superOptionList(m).includes('size=1024k'), `size=1m is applied (${m?.superOptions})`);
  t.ok(superOptionList(m).includes('mode=1770'), 'mode is applied');
});

t.test('mounts: nosuid, nodev and noexec show in the mount options', async (t) => {
  const { report } = checker(t, (c, b) => {
    fs.mkdirSync(path.join(b.dir, 'vol'));
    c.mounts!.push(
      { destination: '/mnt/flags', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec'] },
      { destination: '/mnt/plain', type: 'tmpfs', source: 'tmpfs', options: [] },
      {
        destination: '/mnt/bindflags',
        type: 'bind',
        source: path.join(b.dir, 'vol'),
        options: ['bind', 'nosuid', 'nodev', 'noexec'],
      },
    );
  });
  for (const mp of ['/mnt/flags', '/mnt/bindflags']) {
    const opts = optionList(mountAt(report, mp));
    for (const flag of ['nosuid', 'nodev', 'noexec']) t.ok(opts.includes(flag), `${mp} has ${flag} (${opts})`);
  }
  const plain = optionList(mountAt(report, '/mnt/plain'));
  t.ok(plain.length > 0, '/mnt/plain is mounted');
  for (const flag of ['nosuid', 'nodev', 'noexec']) t.notOk(plain.includes(flag), `/mnt/plain has no ${flag}`);
});

t.test('mounts: propagation options shared, slave and private', async (t) => {
  const shared = hostDir(t, 'tsrun-shared-');
  hostMount(['-t', 'tmpfs', '-o', 'size=1m', 'tsrun-shared', shared]);
  hostMount(['--make-shared', shared]);
  const hostPeer = /shared:(\d+)/.exec(hostMountinfo(shared)?.optional ?? '')?.[1];
  t.ok(hostPeer, 'the host fixture is a shared mount');
  const { report } = checker(t, (c) => {
    c.mounts!.push(
      { destination: '/mnt/shared', type: 'bind', source: shared, options: ['bind', 'shared'] },
      { destination: '/mnt/slave', type: 'bind', source: shared, options: ['bind', 'slave'] },
      { destination: '/mnt/private', type: 'bind', source: shared, options: ['bind', 'private'] },
    );
  });
  t.match(mountAt(report, '/mnt/shared')?.optional, /(^| )shared:\d+/, 'shared: a peer group');
  const slave = String(mountAt(report, '/mnt/slave')?.optional);
  t.match(slave, new RegExp(`(^| )master:${hostPeer}( |$)`), "slave: receives from the host's peer group");
  t.notMatch(slave, /shared:/, 'slave: not shared');
  t.equal(mountAt(report, '/mnt/private')?.optional, '', 'private: no propagation');
  t.equal(hostMountinfo(path.join(shared))?.optional, `shared:${hostPeer}`, 'the host mount is unchanged');
});

t.test('mounts: proc, sysfs (ro), devpts and mqueue', async (t) => {
  const [report, sysWrite, procRead] = probes(t, () => {}, [
    ['report'],
    // A no-op if it got through: the host's current value.
    ['write', '/sys/kernel/rcu_expedited', fs.readFileSync('/sys/kernel/rcu_expedited', 'utf8').trim()],
    ['read', '/proc/self/comm'],
  ]);
  t.equal(mountAt(report, '/proc')?.fstype, 'proc', '/proc is procfs');
  t.equal(procRead.content, 'checker\n', "procfs shows the container's processes");
  const sys = mountAt(report, '/sys');
  t.equal(sys?.fstype, 'sysfs', '/sys is sysfs');
  for (const o of ['ro', 'nosuid', 'noexec', 'nodev']) t.ok(optionList(sys).includes(o), `/sys has ${o}`);
  t.equal(sysWrite.code, 'EROFS', 'writing to the ro sysfs fails with EROFS');
  const pts = mountAt(report, '/dev/pts');
  t.equal(pts?.fstype, 'devpts', '/dev/pts is devpts');
  for (const o of ['mode=620', 'ptmxmode=666', 'gid=5'])
    t.ok(superOptionList(pts).includes(o), `devpts has ${o} (${pts?.superOptions})`);
  t.ok(
    (report.devices as Json[]).some((d) => d.path === '/dev/pts/ptmx' && d.type === 'c'),
    '/dev/pts/ptmx exists',
  );
  t.equal(mountAt(report, '/dev/mqueue')?.fstype, 'mqueue', '/dev/mqueue is mqueue');
  t.equal(mountAt(report, '/dev/shm')?.fstype, 'tmpfs', '/dev/shm is tmpfs');
});

t.test("mounts: a cgroup mount shows the host's cgroup hierarchies", async (t) => {
  const host: Array<{ mountpoint: string; fstype: string; root: string }> = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const fstype = f[f.indexOf('-', 6) + 1];
    if ((fstype === 'cgroup' || fstype === 'cgroup2') && f[4].startsWith('/sys/fs/cgroup'))
      host.push({ mountpoint: f[4], fstype, root: f[3] });
  }
  t.ok(host.length > 0, 'the host has cgroup hierarchies');
  // A hybrid host's cgroup2 tree is left out, as runc leaves it out (test/compat/generated-configs).
  const hybrid = host.some((h) => h.fstype === 'cgroup') && host.some((h) => h.fstype === 'cgroup2');
  const shown = host.filter((h) => !(hybrid && h.fstype === 'cgroup2'));
  if (hybrid) {
    const { report: r } = checker(t, (c) => {
      c.mounts!.push({
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
      });
    });
    for (const h of host.filter((x) => x.fstype === 'cgroup2'))
      t.notOk(mountAt(r, h.mountpoint), `${h.mountpoint} (the hybrid cgroup2 tree) is not mounted`);
  }
  // The container's cgroup below ours in each hierarchy (no cgroupsPath).
  const own = new Map(
    fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(':'))
      .map(([, c, p]) => [c, p]),
  );
  const { report } = checker(t, (c) => {
    c.linux!.namespaces!.push({ type: 'cgroup' });
    c.mounts!.push({
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    });
  });
  for (const h of shown) {
    const m = mountAt(report, h.mountpoint);
    t.equal(m?.fstype, h.fstype, `${h.mountpoint} is mounted as ${h.fstype}`);
    t.ok(optionList(m).includes('ro'), `${h.mountpoint} is read-only`);
    t.equal(m?.root, '/', `${h.mountpoint} shows the container's own cgroup (cgroup namespace)`);
  }
  // Without a cgroup namespace, a v1 hierarchy is bound from the container's own cgroup ("/<id>" by default), as runc does.
  const { report: noNs } = checker(t, (c) => {
    c.mounts!.push({
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    });
  });
  for (const h of shown.filter((x) => x.mountpoint !== '/sys/fs/cgroup')) {
    const m = mountAt(noNs, h.mountpoint);
    t.equal(m?.fstype, h.fstype, `${h.mountpoint} is ${h.fstype} without a cgroup namespace too`);
    t.ok(optionList(m).includes('ro'), `${h.mountpoint} is read-only`);
    const controllers = h.fstype === 'cgroup2' ? '' : path.basename(h.mountpoint).replace(/^systemd$/, 'name=systemd');
    const base = path.posix.relative(h.root, own.get(controllers) ?? '/');
    t.match(
      m?.root,
      new RegExp(`^/${base ? `${base}/` : ''}feat-\\d+-\\d+$`),
      `${h.mountpoint} shows only the container's cgroup, not the host's tree (${m?.root})`,
    );
  }
});

t.test('mounts: root.readonly makes / read-only', async (t) => {
  const [roWrite, devWrite, report] = probes(
    t,
    (c) => {
      c.root!.readonly = true;
    },
    [['write', '/etc/hostname', 'x'], ['write', '/dev/null', 'x'], ['report']],
  );
  t.equal(roWrite.code, 'EROFS', 'writing under / fails with EROFS');
  t.equal(devWrite.ok, true, 'mounts on top of / stay writable');
  t.ok(optionList(mountAt(report, '/')).includes('ro'), '/ is mounted ro');

  const [rwWrite] = probes(
    t,
    (c) => {
      c.root!.readonly = false;
    },
    [['write', '/etc/hostname', 'rw-root']],
  );
  t.equal(rwWrite.ok, true, 'with readonly false, / is writable');
});

t.test('mounts: rootfsPropagation', async (t) => {
  const { report: shared } = checker(t, (c) => {
    c.linux!.rootfsPropagation = 'shared';
  });
  t.match(mountAt(shared, '/')?.optional, /(^| )shared:\d+/, 'rootfsPropagation shared: / is shared');
  const { report: priv } = checker(t, (c) => {
    c.linux!.rootfsPropagation = 'private';
  });
  t.equal(mountAt(priv, '/')?.optional, '', 'rootfsPropagation private: / has no propagation');
});

/** /data in the rootfs is a symlink to an absolute path that is also a real directory on the host. */
function symlinkEscapeTest(t: tap.Test, existsInRootfs: boolean): void {
  const outside = hostDir(t, 'tsrun-outside-');
  fs.writeFileSync(path.join(outside, 'host-marker'), 'host');
  const [viaLink, viaTarget, report] = probes(
    t,
    (c, b) => {
      fs.symlinkSync(outside, path.join(b.rootfs, 'data'));
      if (existsInRootfs) fs.mkdirSync(path.join(b.rootfs, outside), { recursive: true });
      const vol = path.join(b.dir, 'vol');
      fs.mkdirSync(vol);
      fs.writeFileSync(path.join(vol, 'inner.txt'), 'volume');
      c.mounts!.push({ destination: '/data', type: 'bind', source: vol, options: ['bind'] });
    },
    [['read', '/data/inner.txt'], ['read', `${outside}/inner.txt`], ['report']],
  );
  t.equal(viaLink.content, 'volume', 'the volume is visible through /data');
  t.equal(viaTarget.content, 'volume', 'the mount landed on the symlink target inside the rootfs');
  t.ok(mountAt(report, outside), 'the mount point is inside the container');
  t.same(fs.readdirSync(outside), ['host-marker'], 'the host directory is untouched');
}

t.test('mounts: a destination through an absolute symlink stays in the rootfs (target exists in rootfs)', async (t) => {
  symlinkEscapeTest(t, true);
});

t.test(
  'mounts: a destination through an absolute symlink stays in the rootfs (target created in rootfs)',
  async (t) => {
    symlinkEscapeTest(t, false);
  },
);

t.test('mounts: a relative bind source is resolved against the bundle', async (t) => {
  const [r] = probes(
    t,
    (c, b) => {
      fs.mkdirSync(path.join(b.dir, 'relvol'));
      fs.writeFileSync(path.join(b.dir, 'relvol', 'rel.txt'), 'relative');
      c.mounts!.push({ destination: '/mnt/rel', type: 'bind', source: 'relvol', options: ['bind'] });
    },
    [['read', '/mnt/rel/rel.txt']],
    { cwd: '/' },
  );
  t.equal(r.content, 'relative', "relvol/ of the bundle is mounted, whatever tsrun's cwd");
});

// ---------------------------------------------------------------- --no-pivot

t.test('--no-pivot: the container still runs in its rootfs', async (t) => {
  let rootfs = '';
  const [report, hostname] = probes(
    t,
    (c, b) => {
      rootfs = b.rootfs;
      fs.writeFileSync(path.join(b.rootfs, 'etc', 'hostname'), 'no-pivot-rootfs\n');
    },
    [['report'], ['read', '/etc/hostname']],
    { runArgs: ['--no-pivot'] },
  );
  t.equal(hostname.content, 'no-pivot-rootfs\n', 'files come from the bundle rootfs');
  t.equal(report.cwd, '/');
  t.equal(mountAt(report, '/')?.root, rootfs, '/ is the bundle rootfs');
  t.equal(mountAt(report, '/proc')?.fstype, 'proc', 'mounts are in place');
  t.equal(report.exe, '/bin/checker');
});

// ---------------------------------------------------------------- /dev

t.test('/dev: default devices and symlinks', async (t) => {
  const { report } = checker(t);
  const devices = new Map<string, Json>((report.devices as Json[]).map((d) => [d.path, d]));
  const expected: Array<[string, number, number]> = [
    ['/dev/null', 1, 3],
    ['/dev/zero', 1, 5],
    ['/dev/full', 1, 7],
    ['/dev/random', 1, 8],
    ['/dev/urandom', 1, 9],
    ['/dev/tty', 5, 0],
  ];
  for (const [p, major, minor] of expected) {
    t.match(
      devices.get(p),
      { type: 'c', mode: '0666', major, minor, uid: 0, gid: 0 },
      `${p} is c ${major} ${minor} 0666 root`,
    );
  }
  const links: Array<[string, string]> = [
    ['/dev/fd', '/proc/self/fd'],
    ['/dev/stdin', '/proc/self/fd/0'],
    ['/dev/stdout', '/proc/self/fd/1'],
    ['/dev/stderr', '/proc/self/fd/2'],
    ['/dev/ptmx', 'pts/ptmx'],
  ];
  for (const [p, target] of links) t.match(devices.get(p), { type: 'l', link: target }, `${p} -> ${target}`);
});

t.test('/dev: linux.devices entries', async (t) => {
  const [report, write] = probes(
    t,
    (c) => {
      c.linux!.devices = [
        { path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o640, uid: 1000, gid: 1000 },
        { path: '/dev/myfifo', type: 'p', fileMode: 0o600, uid: 0, gid: 0 },
      ];
    },
    [['report'], ['write', '/dev/mynull', 'discarded']],
  );
  const devices = new Map<string, Json>((report.devices as Json[]).map((d) => [d.path, d]));
  t.match(
    devices.get('/dev/mynull'),
    { type: 'c', major: 1, minor: 3, mode: '0640', uid: 1000, gid: 1000 },
    '/dev/mynull as configured',
  );
  t.match(devices.get('/dev/myfifo'), { type: 'p', mode: '0600', uid: 0, gid: 0 }, '/dev/myfifo is a fifo');
  t.equal(write.ok, true, '/dev/mynull works as a null device');
  t.match(devices.get('/dev/null'), { type: 'c', major: 1, minor: 3 }, 'default devices are still there');
});

// ---------------------------------------------------------------- process

t.test('process: user uid, gid, additionalGids and umask', async (t) => {
  const { report } = checker(t, (c) => {
    c.process!.user = { uid: 1000, gid: 1001, additionalGids: [5, 20, 1000], umask: 0o027 };
  });
  t.match(report, { uid: 1000, euid: 1000, suid: 1000, gid: 1001, egid: 1001, sgid: 1001 });
  t.same(
    [...report.groups].sort((a: number, b: number) => a - b),
    [5, 20, 1000],
    'supplementary groups are exactly additionalGids',
  );
  t.equal(report.umask, '0027');
});

t.test('process: default user is root with umask 0022 and no groups', async (t) => {
  const { report } = checker(t);
  t.match(report, { uid: 0, euid: 0, gid: 0, egid: 0, umask: '0022' });
  t.same(report.groups, []);
});

t.test('process: cwd', async (t) => {
  const { report } = checker(t, (c) => {
    c.process!.cwd = '/home/tester';
  });
  t.equal(report.cwd, '/home/tester');
});

t.test('process: a cwd that does not exist is made, as runc makes it', async (t) => {
  const bundle = bundleWith(t, ['/bin/sh', '-c', 'pwd'], (c) => {
    c.process!.cwd = '/does/not/exist';
  });
  const o = runBundle(t, bundle);
  t.equal(o.result.status, 0, o.result.stderr);
  t.equal(o.result.stdout, '/does/not/exist\n');
});

t.test('process: env is passed exactly, with HOME added from /etc/passwd when absent', async (t) => {
  const env = ['PATH=/bin:/usr/bin', 'A=1', 'SPACES=two words', 'EMPTY=', 'EQ=a=b'];
  const { report } = checker(t, (c) => {
    c.process!.env = env;
  });
  t.same(report.env, [...env, 'HOME=/root'], "root's home in the fixture's /etc/passwd");

  const withHome = ['PATH=/bin', 'HOME=/home/tester', 'X=y'];
  const { report: r2 } = checker(t, (c) => {
    c.process!.env = withHome;
  });
  t.same(r2.env, withHome, 'a configured HOME is kept and nothing is added');
});

t.test('process: args are passed exactly', async (t) => {
  const extra = ['report', 'with space', '--flag', '', 'ünïcode', '$HOME'];
  const { report } = checker(t, () => {}, extra);
  t.same(report.args, ['/bin/checker', ...extra]);
});

t.test('process: rlimits', async (t) => {
  const { report } = checker(t, (c) => {
    c.process!.rlimits = [
      { type: 'RLIMIT_NOFILE', soft: 1000, hard: 2000 },
      { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
    ];
  });
  t.same(report.rlimits.RLIMIT_NOFILE, { soft: 1000, hard: 2000 });
  t.same(report.rlimits.RLIMIT_CORE, { soft: 0, hard: 0 });
});

t.test('process: oomScoreAdj', async (t) => {
  const { report } = checker(t, (c) => {
    c.process!.oomScoreAdj = 500;
  });
  t.equal(report.oomScoreAdj, 500);
  t.equal(Number(fs.readFileSync('/proc/self/oom_score_adj', 'utf8')), 0, "the host's is unchanged");
});

t.test('process: noNewPrivileges', async (t) => {
  const { report } = checker(t, (c) => {
    c.process!.noNewPrivileges = true;
  });
  t.equal(report.noNewPrivs, true, 'noNewPrivileges true sets no_new_privs');
  const hostHasNnp = /NoNewPrivs:\s*1/.test(fs.readFileSync('/proc/self/status', 'utf8'));
  if (hostHasNnp) {
    t.comment('this test process already has no_new_privs: the false case cannot be checked');
  } else {
    const { report: r2 } = checker(t, (c) => {
      c.process!.noNewPrivileges = false;
    });
    t.equal(r2.noNewPrivs, false, 'noNewPrivileges false leaves it unset');
  }
});

t.test("process: linux.sysctl in the container's net and ipc namespaces", async (t) => {
  const hostForward = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  const hostShmmax = fs.readFileSync('/proc/sys/kernel/shmmax', 'utf8');
  const want = hostForward.trim() === '1' ? '0' : '1';
  t.teardown(() => {
    // Should the settings have escaped to the host, put them back.
    if (fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8') !== hostForward)
      fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', hostForward);
    if (fs.readFileSync('/proc/sys/kernel/shmmax', 'utf8') !== hostShmmax)
      fs.writeFileSync('/proc/sys/kernel/shmmax', hostShmmax);
  });
  const [forward, shmmax] = probes(
    t,
    (c) => {
      c.linux!.sysctl = { 'net.ipv4.ip_forward': want, 'kernel.shmmax': '123456789' };
    },
    [
      ['sysctl', 'net.ipv4.ip_forward'],
      ['sysctl', 'kernel.shmmax'],
    ],
  );
  t.equal(forward.value, want, 'net.ipv4.ip_forward is set inside');
  t.equal(shmmax.value, '123456789', 'kernel.shmmax is set inside');
  t.equal(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'), hostForward, "the host's ip_forward is unchanged");
  t.equal(fs.readFileSync('/proc/sys/kernel/shmmax', 'utf8'), hostShmmax, "the host's shmmax is unchanged");
});

// ---------------------------------------------------------------- fds, signals, exe

t.test('fds: only stdin, stdout and stderr reach the process', async (t) => {
  const { report } = checker(t);
  t.same(Object.keys(report.fds), ['0', '1', '2']);
});

t.test('signals: nothing ignored or blocked (Node ignores SIGPIPE and SIGXFSZ; the container must not)', async (t) => {
  const { report } = checker(t);
  t.same(report.signals.ignoredSignals, [], 'no ignored signals');
  t.same(report.signals.blockedSignals, [], 'no blocked signals');
  t.equal(report.signals.ignored, '0000000000000000', 'SigIgn is empty');
  t.equal(report.signals.blocked, '0000000000000000', 'SigBlk is empty');
});

t.test('exe: the process is the program itself; a created init is a memfd, not node', async (t) => {
  const { report } = checker(t);
  t.equal(report.exe, '/bin/checker', '/proc/self/exe inside is /bin/checker');

  const bundle = bundleWith(t, ['/bin/checker']);
  const id = uniqueId('feat');
  cleanupContainer(t, bundle.root, id);
  const created = tsrunDetached(bundle.root, ['create', '-b', bundle.dir, id]);
  t.equal(created.status, 0, `tsrun create exits 0 (${created.stderr.trim()})`);
  const state = tsrun(bundle.root, ['state', id]);
  const pid = JSON.parse(state.stdout).pid as number;
  t.ok(pid > 0, 'state has the init pid');
  const exe = fs.readlinkSync(`/proc/${pid}/exe`);
  t.match(exe, /^\/memfd:/, `the waiting init runs from a memfd (${exe})`);
  t.notMatch(exe, /node/, 'not node');
  const del = tsrun(bundle.root, ['delete', '--force', id]);
  t.equal(del.status, 0, `delete exits 0 (${del.stderr.trim()})`);
  t.ok(
    await waitFor(
      () => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '),
    ),
    'the init is gone',
  );
  t.same(leftovers(bundle, id), [], 'nothing is left behind after delete');
});
