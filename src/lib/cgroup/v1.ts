/**
 * The cgroup v1 driver, for legacy and hybrid hosts.  The container gets a
 * directory in every v1 hierarchy (and, on hybrid hosts, in the cgroup2
 * tree too, which may hold controllers such as hugetlb).  Knob names and
 * the "0 means unset" convention follow runc's fs driver, since engines
 * send zeros for fields they do not set.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { sleepSync } from '../sleep';
import { blkioEntries, keyValues, listOf, memoryEntry, omitEmpty, readU64, sortedMap, type U64 } from './stats';
import { DEFAULT_DEVICE_RULES, parseDeviceRules, v1DeviceRule } from './devices';
import {
  type CgroupManager,
  type CgroupState,
  type Hierarchy,
  type SubCgroups,
  cgroupRelativePath,
  ownCgroups,
  removeCgroupTree,
  signalFrozen,
  subCgroupDir,
  treePids,
  writeKnob,
} from './manager';

// linux.resources as config.json has it: typed when the cgroup layer is rebuilt as manager x version.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

export class CgroupV1 implements CgroupManager {
  /** hierarchy mount point -> the container's directory in it */
  private readonly dirs: Map<string, Hierarchy & { dir: string }>;

  constructor(hierarchies: Hierarchy[], cgroupsPath: string | undefined, id: string, existing?: CgroupState) {
    this.dirs = new Map();
    const own = ownCgroups();
    for (const h of hierarchies) {
      if (h.version === 2 && h.mountPoint === '/sys/fs/cgroup') continue; // a unified host is the v2 driver's
      let dir: string;
      if (existing) {
        dir = existing.paths[h.mountPoint];
        if (!dir) continue;
      } else {
        const key = h.version === 2 ? '' : h.controllers.join(',');
        const ownPath = own.get(key) ?? '/';
        const rel = cgroupRelativePath(cgroupsPath, id, ownPath);
        // A hierarchy mounted from a sub-tree (root != "/") shows paths below that root.
        const below = h.root !== '/' && rel.startsWith(h.root) ? rel.slice(h.root.length) : rel;
        dir = path.join(h.mountPoint, below);
      }
      this.dirs.set(h.mountPoint, { ...h, dir });
    }
  }

  describe(): CgroupState {
    return { driver: 'v1', paths: Object.fromEntries([...this.dirs].map(([mp, h]) => [mp, h.dir])) };
  }

  private withController(controller: string): (Hierarchy & { dir: string }) | undefined {
    for (const h of this.dirs.values()) if (h.version === 1 && h.controllers.includes(controller)) return h;
    return undefined;
  }

  private unified(): (Hierarchy & { dir: string }) | undefined {
    for (const h of this.dirs.values()) if (h.version === 2) return h;
    return undefined;
  }

  /** The directory of a v1 controller; its absence is an error naming the field. */
  private dirFor(controller: string, field: string): string {
    const h = this.withController(controller);
    if (!h) throw new TsrunError(`${field}: this host has no ${controller} cgroup controller`);
    return h.dir;
  }

  create(): void {
    for (const h of this.dirs.values()) {
      if (!(h.version === 1 && h.controllers.includes('cpuset'))) {
        fs.mkdirSync(h.dir, { recursive: true });
        continue;
      }
      // A new cpuset starts empty and admits no task: each new level inherits its parent's.
      let dir = h.mountPoint;
      for (const part of path.relative(h.mountPoint, h.dir).split('/').filter(Boolean)) {
        const parent = dir;
        dir = path.join(dir, part);
        if (!fs.existsSync(dir)) fs.mkdirSync(dir);
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          if (readOr(path.join(dir, file), '').trim() === '')
            fs.writeFileSync(path.join(dir, file), readOr(path.join(parent, file), ''));
        }
      }
    }
  }

  /**
   * A process is cloned into one cgroup2 directory at most: on a hybrid
   * host, the unified one.  The v1 hierarchies the helper joins itself
   * before it clones the init (joinTargets), which then inherits them.
   */
  /**
   * exec --cgroup: the directory a process goes to in hierarchy `h`.  A
   * path for all controllers applies to every hierarchy; a per-controller
   * one to the hierarchy holding that controller (the unified one of a
   * hybrid host counts by its own controllers); the rest stay the
   * container's own, as runc's do.
   */
  private targetIn(h: Hierarchy & { dir: string }, sub?: SubCgroups): string {
    if (!sub) return h.dir;
    const forAll = sub[''];
    const own = h.version === 2 ? h.controllers : h.controllers.map((c) => c.replace(/^name=/, ''));
    const named = own.map((c) => sub[c]).filter((s): s is string => s !== undefined);
    if (new Set(named).size > 1)
      throw new TsrunError(`--cgroup: ${own.join(',')} share one hierarchy and cannot go to different sub-cgroups`);
    const wanted = named[0] ?? forAll;
    return wanted === undefined ? h.dir : subCgroupDir(h.dir, wanted);
  }

  private checkSubControllers(sub?: SubCgroups): void {
    const known = new Set([...this.dirs.values()].flatMap((h) => h.controllers.map((c) => c.replace(/^name=/, ''))));
    for (const c of Object.keys(sub ?? {}))
      if (c && !known.has(c)) throw new TsrunError(`--cgroup: unknown controller ${c}`);
  }

  cloneTarget(sub?: SubCgroups): string | undefined {
    this.checkSubControllers(sub);
    const unified = [...this.dirs.values()].find((h) => h.version === 2);
    return unified && this.targetIn(unified, sub);
  }

  joinTargets(sub?: SubCgroups): string[] {
    this.checkSubControllers(sub);
    return [...this.dirs.values()].filter((h) => h.version === 1).map((h) => this.targetIn(h, sub));
  }

  apply(pid: number, sub?: SubCgroups): void {
    this.checkSubControllers(sub);
    for (const h of this.dirs.values())
      writeKnob(this.targetIn(h, sub), 'cgroup.procs', pid, sub ? '--cgroup' : 'linux.cgroupsPath');
  }

  set(resources: Json | undefined): void {
    if (!resources) return;
    const r = resources;
    if (r.memory) this.setMemory(r.memory);
    if (r.cpu) this.setCpu(r.cpu);
    if (r.pids && r.pids.limit !== undefined && r.pids.limit !== 0) {
      writeKnob(
        this.dirFor('pids', 'linux.resources.pids.limit'),
        'pids.max',
        r.pids.limit > 0 ? r.pids.limit : 'max',
        'linux.resources.pids.limit',
      );
    }
    if (r.blockIO) this.setBlockIO(r.blockIO);
    (r.hugepageLimits ?? []).forEach((h: Json, i: number) =>
      this.setHugepages(h, `linux.resources.hugepageLimits[${i}]`),
    );
    if (r.network) this.setNetwork(r.network);
    if (r.rdma && Object.keys(r.rdma).length) {
      const dir = this.dirFor('rdma', 'linux.resources.rdma');
      for (const [device, l] of Object.entries(r.rdma as Record<string, Json>)) {
        const parts = [
          l.hcaHandles !== undefined ? `hca_handle=${l.hcaHandles}` : '',
          l.hcaObjects !== undefined ? `hca_object=${l.hcaObjects}` : '',
        ].filter(Boolean);
        writeKnob(dir, 'rdma.max', `${device} ${parts.join(' ')}`, `linux.resources.rdma.${device}`);
      }
    }
    if (r.unified && Object.keys(r.unified).length) this.setUnified(r.unified);
    if (r.devices) this.setDevices(r.devices);
  }

  private setMemory(m: Json): void {
    const field = 'linux.resources.memory';
    const wants =
      ['limit', 'reservation', 'swap', 'swappiness', 'kernel', 'kernelTCP'].some(
        (k) => m[k] !== undefined && m[k] !== 0,
      ) ||
      m.disableOOMKiller !== undefined ||
      m.useHierarchy !== undefined;
    if (!wants) return;
    const dir = this.dirFor('memory', field);
    const limit = m.limit && m.limit !== 0 ? m.limit : undefined;
    if (m.checkBeforeUpdate && limit !== undefined && limit !== -1) {
      const usage = Number(readOr(path.join(dir, 'memory.usage_in_bytes'), '0'));
      if (limit < usage)
        throw new TsrunError(`${field}.limit: ${limit} is below the current usage ${usage} (checkBeforeUpdate)`);
    }
    const swap = m.swap && m.swap !== 0 ? m.swap : undefined;
    // memsw must stay >= limit at every step: raise memsw first when it grows.
    const current = Number(readOr(path.join(dir, 'memory.memsw.limit_in_bytes'), '0'));
    const swapFirst = swap !== undefined && (swap === -1 || swap >= current);
    if (swap !== undefined && swapFirst) writeKnob(dir, 'memory.memsw.limit_in_bytes', swap, `${field}.swap`);
    if (limit !== undefined) writeKnob(dir, 'memory.limit_in_bytes', limit, `${field}.limit`);
    if (swap !== undefined && !swapFirst) writeKnob(dir, 'memory.memsw.limit_in_bytes', swap, `${field}.swap`);
    if (m.reservation) writeKnob(dir, 'memory.soft_limit_in_bytes', m.reservation, `${field}.reservation`);
    if (m.swappiness !== undefined && m.swappiness !== -1)
      writeKnob(dir, 'memory.swappiness', m.swappiness, `${field}.swappiness`);
    if (m.disableOOMKiller !== undefined)
      writeKnob(dir, 'memory.oom_control', m.disableOOMKiller ? 1 : 0, `${field}.disableOOMKiller`);
    if (
      m.useHierarchy !== undefined &&
      m.useHierarchy !== (readOr(path.join(dir, 'memory.use_hierarchy'), '1').trim() === '1')
    )
      writeKnob(dir, 'memory.use_hierarchy', m.useHierarchy ? 1 : 0, `${field}.useHierarchy`);
    for (const [key, file] of [
      ['kernel', 'memory.kmem.limit_in_bytes'],
      ['kernelTCP', 'memory.kmem.tcp.limit_in_bytes'],
    ]) {
      if (!m[key]) continue;
      // Kernels since 5.16 keep the file but refuse kmem limits: runc warns, so do we.
      try {
        writeKnob(dir, file, m[key], `${field}.${key}`);
      } catch (err) {
        warn(`${field}.${key}: not applied: ${(err as Error).message}`);
      }
    }
  }

  private setCpu(c: Json): void {
    const field = 'linux.resources.cpu';
    const cpu = (): string => this.dirFor('cpu', field);
    if (c.shares) writeKnob(cpu(), 'cpu.shares', c.shares, `${field}.shares`);
    // runc's order: the period first; if the kernel refuses it (the old quota
    // over the new period would exceed the parent's bandwidth), the quota
    // first and the period after.
    let periodLater = false;
    if (c.period) {
      try {
        writeKnob(cpu(), 'cpu.cfs_period_us', c.period, `${field}.period`);
      } catch (err) {
        if (!c.quota || !/invalid argument/.test((err as Error).message)) throw err;
        periodLater = true;
      }
    }
    if (c.quota) writeKnob(cpu(), 'cpu.cfs_quota_us', c.quota, `${field}.quota`);
    if (periodLater) writeKnob(cpu(), 'cpu.cfs_period_us', c.period, `${field}.period`);
    if (c.burst !== undefined && c.burst !== null) writeKnob(cpu(), 'cpu.cfs_burst_us', c.burst, `${field}.burst`);
    if (c.realtimePeriod) writeKnob(cpu(), 'cpu.rt_period_us', c.realtimePeriod, `${field}.realtimePeriod`);
    if (c.realtimeRuntime) writeKnob(cpu(), 'cpu.rt_runtime_us', c.realtimeRuntime, `${field}.realtimeRuntime`);
    if (c.idle !== undefined && c.idle !== null) writeKnob(cpu(), 'cpu.idle', c.idle, `${field}.idle`);
    if (c.cpus) writeKnob(this.dirFor('cpuset', `${field}.cpus`), 'cpuset.cpus', c.cpus, `${field}.cpus`);
    if (c.mems) writeKnob(this.dirFor('cpuset', `${field}.mems`), 'cpuset.mems', c.mems, `${field}.mems`);
  }

  private setBlockIO(b: Json): void {
    const field = 'linux.resources.blockIO';
    const blkio = (): string => this.dirFor('blkio', field);
    const weightFile = (dir: string): string =>
      fs.existsSync(path.join(dir, 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
    if (b.weight) writeKnob(blkio(), weightFile(blkio()), b.weight, `${field}.weight`);
    if (b.leafWeight) writeKnob(blkio(), 'blkio.leaf_weight', b.leafWeight, `${field}.leafWeight`);
    (b.weightDevice ?? []).forEach((d: Json, i: number) => {
      if (d.weight)
        writeKnob(
          blkio(),
          weightFile(blkio()).replace('weight', 'weight_device'),
          `${d.major}:${d.minor} ${d.weight}`,
          `${field}.weightDevice[${i}]`,
        );
      if (d.leafWeight)
        writeKnob(
          blkio(),
          'blkio.leaf_weight_device',
          `${d.major}:${d.minor} ${d.leafWeight}`,
          `${field}.weightDevice[${i}]`,
        );
    });
    const throttles: Array<[string, string]> = [
      ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device'],
      ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device'],
      ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device'],
      ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device'],
    ];
    for (const [key, file] of throttles) {
      (b[key] ?? []).forEach((d: Json, i: number) =>
        writeKnob(blkio(), file, `${d.major}:${d.minor} ${d.rate}`, `${field}.${key}[${i}]`),
      );
    }
  }

  private setHugepages(h: Json, field: string): void {
    const v1 = this.withController('hugetlb');
    if (v1) return writeKnob(v1.dir, `hugetlb.${h.pageSize}.limit_in_bytes`, h.limit, field);
    const unified = this.unified();
    if (unified?.controllers.includes('hugetlb')) {
      enableInParents(unified, 'hugetlb');
      return writeKnob(unified.dir, `hugetlb.${h.pageSize}.max`, h.limit, field);
    }
    throw new TsrunError(`${field}: this host has no hugetlb cgroup controller`);
  }

  private setNetwork(n: Json): void {
    const field = 'linux.resources.network';
    if (n.classID !== undefined)
      writeKnob(this.dirFor('net_cls', `${field}.classID`), 'net_cls.classid', n.classID, `${field}.classID`);
    (n.priorities ?? []).forEach((p: Json, i: number) =>
      writeKnob(
        this.dirFor('net_prio', `${field}.priorities`),
        'net_prio.ifpriomap',
        `${p.name} ${p.priority}`,
        `${field}.priorities[${i}]`,
      ),
    );
  }

  /** Raw cgroup2 keys: only where a cgroup2 tree exists (hybrid), and only for its controllers. */
  /**
   * linux.resources.unified names cgroup2 files: on a v1 or hybrid host
   * runc refuses it ("cannot use unified on cgroup v1"), and so does tsrun
   * (writing some keys to the hybrid cgroup2 tree and others to v1 would
   * split one container's limits between two hierarchies).
   */
  private setUnified(unified: Record<string, string>): void {
    const first = Object.keys(unified)[0];
    throw new TsrunError(
      `linux.resources.unified: cannot be used on a cgroup v1 host ("${first}"): runtime-spec's unified keys are for a cgroup2-only host`,
    );
  }

  private setDevices(rules: Json[]): void {
    const field = 'linux.resources.devices';
    const dir = this.dirFor('devices', field);
    // Start from nothing allowed, then the config's rules in order, then runc's defaults.
    writeKnob(dir, 'devices.deny', 'a', field);
    for (const rule of [...parseDeviceRules(rules, field), ...DEFAULT_DEVICE_RULES])
      writeKnob(dir, rule.allow ? 'devices.allow' : 'devices.deny', v1DeviceRule(rule), field);
  }

  private freezerDir(): string {
    return this.dirFor('freezer', 'pause');
  }

  freeze(): void {
    const dir = this.freezerDir();
    writeKnob(dir, 'freezer.state', 'FROZEN', 'pause');
    for (let i = 0; i < 1000; i++) {
      if (readOr(path.join(dir, 'freezer.state'), '').trim() === 'FROZEN') return;
      sleepSync(1);
      writeKnob(dir, 'freezer.state', 'FROZEN', 'pause'); // FREEZING can stall on a forking task
    }
    throw new TsrunError('pause: the cgroup did not freeze');
  }

  thaw(): void {
    writeKnob(this.freezerDir(), 'freezer.state', 'THAWED', 'resume');
  }

  isFrozen(): boolean {
    const h = this.withController('freezer');
    return !!h && readOr(path.join(h.dir, 'freezer.state'), 'THAWED').trim() !== 'THAWED';
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const h of this.dirs.values()) for (const pid of treePids(h.dir)) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  killAll(signal: number): void {
    signalFrozen(this, signal, !!this.withController('freezer'));
  }

  destroy(): void {
    for (const h of this.dirs.values()) removeCgroupTree(h.dir);
  }

  private read(controller: string, file: string): string | undefined {
    const h = this.withController(controller);
    if (!h) return undefined;
    try {
      return fs.readFileSync(path.join(h.dir, file), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  private u64(controller: string, file: string): U64 {
    const h = this.withController(controller);
    return h ? readU64(path.join(h.dir, file)) : 0n;
  }

  /** runc's Stats for cgroup v1 (see stats.ts for its rules). */
  stats(): Record<string, unknown> {
    const ticksToNs = 1_000_000_000n / 100n; // cpuacct.stat counts USER_HZ (100) ticks
    const cpuacct = keyValues(this.read('cpuacct', 'cpuacct.stat'));
    const cpuStat = keyValues(this.read('cpu', 'cpu.stat'));
    const memStat = keyValues(this.read('memory', 'memory.stat'));
    const perCpu = (file: string): U64[] =>
      (this.read('cpuacct', file) ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((n) => BigInt(n));
    const entry = (prefix: string) =>
      memoryEntry({
        limit: this.u64('memory', `${prefix}limit_in_bytes`),
        usage: this.u64('memory', `${prefix}usage_in_bytes`),
        max: this.u64('memory', `${prefix}max_usage_in_bytes`),
        failcnt: this.u64('memory', `${prefix}failcnt`),
      });
    // runc's order: BFQ's counters where the kernel has them, else CFQ's, else the throttling layer's.
    const blkioDir = this.withController('blkio')?.dir;
    const blkioPrefix = ['blkio.bfq.', 'blkio.', 'blkio.throttle.'].find(
      (p) => blkioDir && fs.existsSync(path.join(blkioDir, `${p}io_service_bytes_recursive`)),
    );
    const cpuset = this.withController('cpuset')
      ? {
          ...omitEmpty({
            cpus: listOf(this.read('cpuset', 'cpuset.effective_cpus') ?? this.read('cpuset', 'cpuset.cpus')),
          }),
          cpu_exclusive: this.u64('cpuset', 'cpuset.cpu_exclusive'),
          ...omitEmpty({
            mems: listOf(this.read('cpuset', 'cpuset.effective_mems') ?? this.read('cpuset', 'cpuset.mems')),
          }),
          mem_hardwall: this.u64('cpuset', 'cpuset.mem_hardwall'),
          mem_exclusive: this.u64('cpuset', 'cpuset.mem_exclusive'),
          memory_migrate: this.u64('cpuset', 'cpuset.memory_migrate'),
          memory_spread_page: this.u64('cpuset', 'cpuset.memory_spread_page'),
          memory_spread_slab: this.u64('cpuset', 'cpuset.memory_spread_slab'),
          memory_pressure: this.u64('cpuset', 'cpuset.memory_pressure'),
          sched_load_balance: this.u64('cpuset', 'cpuset.sched_load_balance'),
          sched_relax_domain_level: this.u64('cpuset', 'cpuset.sched_relax_domain_level'),
        }
      : {};
    const hugetlb: Record<string, unknown> = {};
    const hugetlbDir = this.withController('hugetlb')?.dir;
    for (const file of hugetlbDir
      ? fs.readdirSync(hugetlbDir).filter((f) => /^hugetlb\.[^.]+\.usage_in_bytes$/.test(f))
      : []) {
      const size = file.split('.')[1];
      hugetlb[size] = {
        ...omitEmpty({
          usage: this.u64('hugetlb', file),
          max: this.u64('hugetlb', `hugetlb.${size}.max_usage_in_bytes`),
        }),
        failcnt: this.u64('hugetlb', `hugetlb.${size}.failcnt`),
      };
    }
    return {
      cpu: {
        usage: {
          ...omitEmpty({
            total: this.u64('cpuacct', 'cpuacct.usage'),
            percpu: perCpu('cpuacct.usage_percpu'),
            percpu_kernel: perCpu('cpuacct.usage_percpu_sys'),
            percpu_user: perCpu('cpuacct.usage_percpu_user'),
          }),
          kernel: (cpuacct.system ?? 0n) * ticksToNs,
          user: (cpuacct.user ?? 0n) * ticksToNs,
        },
        throttling: omitEmpty({
          periods: cpuStat.nr_periods,
          throttledPeriods: cpuStat.nr_throttled,
          throttledTime: cpuStat.throttled_time,
        }),
      },
      cpuset,
      memory: {
        ...omitEmpty({ cache: memStat.cache }),
        usage: entry('memory.'),
        swap: entry('memory.memsw.'),
        kernel: entry('memory.kmem.'),
        kernelTCP: entry('memory.kmem.tcp.'),
        ...omitEmpty({ raw: Object.keys(memStat).length ? sortedMap(memStat) : undefined }),
      },
      pids: omitEmpty({
        current: this.u64('pids', 'pids.current'),
        limit: this.u64('pids', 'pids.max') === 0xffffffffffffffffn ? 0n : this.u64('pids', 'pids.max'),
      }),
      blkio: blkioPrefix
        ? omitEmpty({
            ioServiceBytesRecursive: blkioEntries(this.read('blkio', `${blkioPrefix}io_service_bytes_recursive`)),
            ioServicedRecursive: blkioEntries(this.read('blkio', `${blkioPrefix}io_serviced_recursive`)),
          })
        : {},
      hugetlb,
      intel_rdt: {},
      network_interfaces: null,
    };
  }

  oomKills(): number {
    return Number(keyValues(this.read('memory', 'memory.oom_control')).oom_kill ?? 0n);
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/** A cgroup2 controller must be enabled in every ancestor's subtree_control. */
export function enableInParents(h: { mountPoint: string; dir: string }, controller: string): void {
  const rel = path.relative(h.mountPoint, h.dir).split('/').filter(Boolean);
  let dir = h.mountPoint;
  for (const part of rel) {
    const enabled = readOr(path.join(dir, 'cgroup.subtree_control'), '').split(/\s+/);
    if (!enabled.includes(controller))
      writeKnob(dir, 'cgroup.subtree_control', `+${controller}`, `enable ${controller}`);
    dir = path.join(dir, part);
  }
}

export function validateUnifiedKey(key: string, field: string): void {
  if (!/^[a-z_]+\.[a-z0-9_.]+$/.test(key) || key.includes('..'))
    throw new TsrunError(`${field}: ${JSON.stringify(key)} is not a cgroup2 file name`);
}
