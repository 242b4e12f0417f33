/**
 * The cgroup v1 version writer, for legacy and hybrid hosts: limits,
 * freezing and stats over the container's directory in each hierarchy
 * (and, on hybrid hosts, in the cgroup2 tree too, which may hold
 * controllers such as hugetlb), wherever a placement manager put them
 * (manager.ts).  Knob names and the "0 means unset" convention follow
 * runc's fs driver, since engines send zeros for fields they do not set.
 */
import path = require('path');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { blkioEntries, keyValues, listOf, memoryEntry, omitEmpty, sortedMap, type U64, u64Of } from './stats';
import { containerDeviceRules, type DeviceRule, effectiveDeviceRules, v1DeviceRule } from './devices';
import { type CgroupFiles, readOr, writeKnob } from './files';
import { type HierarchyDir, MissingControllerError, signalFrozen, type VersionWriter } from './manager';
import {
  type BlockIOResources,
  type CpuResources,
  type DeviceRuleConfig,
  type LinuxResources,
  type MemoryResources,
} from './resources';

export class V1Writer implements VersionWriter {
  readonly devicesInSteps = true;
  /**
   * @param dirs the container's directory in each hierarchy
   * @param sleep how a freeze that is still FREEZING waits
   */
  constructor(
    private readonly dirs: readonly HierarchyDir[],
    private readonly files: CgroupFiles,
    private readonly sleep: (ms: number) => void,
    /** The rules after the config's (defaultDeviceRules). */
    private readonly deviceDefaults: readonly DeviceRule[],
  ) {}

  private withController(controller: string): HierarchyDir | undefined {
    for (const h of this.dirs) if (h.version === 1 && h.controllers.includes(controller)) return h;
    return undefined;
  }

  private unified(): HierarchyDir | undefined {
    for (const h of this.dirs) if (h.version === 2) return h;
    return undefined;
  }

  /** The directory of a v1 controller; its absence is an error naming the field. */
  private dirFor(controller: string, field: string): string {
    const h = this.withController(controller);
    if (!h) throw new MissingControllerError(controller, field);
    return h.dir;
  }

  set(resources: LinuxResources | undefined): void {
    if (!resources) return;
    const r = resources;
    if (r.memory) this.setMemory(r.memory);
    if (r.cpu) this.setCpu(r.cpu);
    if (r.pids && r.pids.limit !== undefined && r.pids.limit !== 0) {
      writeKnob(
        this.files,
        this.dirFor('pids', 'linux.resources.pids.limit'),
        'pids.max',
        r.pids.limit > 0 ? r.pids.limit : 'max',
        'linux.resources.pids.limit',
      );
    }
    if (r.blockIO) this.setBlockIO(r.blockIO);
    (r.hugepageLimits ?? []).forEach((h, i) => this.setHugepages(h, `linux.resources.hugepageLimits[${i}]`));
    if (r.network) this.setNetwork(r.network);
    if (r.rdma && Object.keys(r.rdma).length) {
      const dir = this.dirFor('rdma', 'linux.resources.rdma');
      for (const [device, l] of Object.entries(r.rdma)) {
        const parts = [
          l.hcaHandles !== undefined ? `hca_handle=${l.hcaHandles}` : '',
          l.hcaObjects !== undefined ? `hca_object=${l.hcaObjects}` : '',
        ].filter(Boolean);
        writeKnob(this.files, dir, 'rdma.max', `${device} ${parts.join(' ')}`, `linux.resources.rdma.${device}`);
      }
    }
    if (r.unified && Object.keys(r.unified).length) this.setUnified(r.unified);
    if (r.devices) this.setDevices(r.devices);
  }

  private setMemory(m: MemoryResources): void {
    const field = 'linux.resources.memory';
    const wants =
      (['limit', 'reservation', 'swap', 'swappiness', 'kernel', 'kernelTCP'] as const).some(
        (k) => m[k] !== undefined && m[k] !== 0,
      ) ||
      m.disableOOMKiller !== undefined ||
      m.useHierarchy !== undefined;
    if (!wants) return;
    const dir = this.dirFor('memory', field);
    const limit = m.limit && m.limit !== 0 ? m.limit : undefined;
    if (m.checkBeforeUpdate && limit !== undefined && limit !== -1) {
      const usage = Number(readOr(this.files, path.join(dir, 'memory.usage_in_bytes'), '0'));
      if (limit < usage)
        throw new TsrunError(`${field}.limit: ${limit} is below the current usage ${usage} (checkBeforeUpdate)`);
    }
    const swap = m.swap && m.swap !== 0 ? m.swap : undefined;
    // memsw must stay >= limit at every step: raise memsw first when it grows.
    const current = Number(readOr(this.files, path.join(dir, 'memory.memsw.limit_in_bytes'), '0'));
    const swapFirst = swap !== undefined && (swap === -1 || swap >= current);
    if (swap !== undefined && swapFirst)
      writeKnob(this.files, dir, 'memory.memsw.limit_in_bytes', swap, `${field}.swap`);
    if (limit !== undefined) writeKnob(this.files, dir, 'memory.limit_in_bytes', limit, `${field}.limit`);
    if (swap !== undefined && !swapFirst)
      writeKnob(this.files, dir, 'memory.memsw.limit_in_bytes', swap, `${field}.swap`);
    if (m.reservation) writeKnob(this.files, dir, 'memory.soft_limit_in_bytes', m.reservation, `${field}.reservation`);
    if (m.swappiness !== undefined && m.swappiness !== -1)
      writeKnob(this.files, dir, 'memory.swappiness', m.swappiness, `${field}.swappiness`);
    if (m.disableOOMKiller !== undefined)
      writeKnob(this.files, dir, 'memory.oom_control', m.disableOOMKiller ? 1 : 0, `${field}.disableOOMKiller`);
    if (
      m.useHierarchy !== undefined &&
      m.useHierarchy !== (readOr(this.files, path.join(dir, 'memory.use_hierarchy'), '1').trim() === '1')
    )
      writeKnob(this.files, dir, 'memory.use_hierarchy', m.useHierarchy ? 1 : 0, `${field}.useHierarchy`);
    for (const [key, file] of [
      ['kernel', 'memory.kmem.limit_in_bytes'],
      ['kernelTCP', 'memory.kmem.tcp.limit_in_bytes'],
    ] as const) {
      const value = m[key];
      if (!value) continue;
      // Kernels since 5.16 keep the file but refuse kmem limits: runc warns, so do we.
      try {
        writeKnob(this.files, dir, file, value, `${field}.${key}`);
      } catch (err) {
        warn(`${field}.${key}: not applied: ${(err as Error).message}`);
      }
    }
  }

  private setCpu(c: CpuResources): void {
    const field = 'linux.resources.cpu';
    const cpu = (): string => this.dirFor('cpu', field);
    if (c.shares) writeKnob(this.files, cpu(), 'cpu.shares', c.shares, `${field}.shares`);
    // runc's order: the period first; if the kernel refuses it (the old quota
    // over the new period would exceed the parent's bandwidth), the quota
    // first and the period after.
    let periodLater = false;
    if (c.period) {
      try {
        writeKnob(this.files, cpu(), 'cpu.cfs_period_us', c.period, `${field}.period`);
      } catch (err) {
        if (!c.quota || !/invalid argument/.test((err as Error).message)) throw err;
        periodLater = true;
      }
    }
    if (c.quota) writeKnob(this.files, cpu(), 'cpu.cfs_quota_us', c.quota, `${field}.quota`);
    if (periodLater) writeKnob(this.files, cpu(), 'cpu.cfs_period_us', c.period!, `${field}.period`);
    if (c.burst !== undefined && c.burst !== null)
      writeKnob(this.files, cpu(), 'cpu.cfs_burst_us', c.burst, `${field}.burst`);
    if (c.realtimePeriod) writeKnob(this.files, cpu(), 'cpu.rt_period_us', c.realtimePeriod, `${field}.realtimePeriod`);
    if (c.realtimeRuntime)
      writeKnob(this.files, cpu(), 'cpu.rt_runtime_us', c.realtimeRuntime, `${field}.realtimeRuntime`);
    if (c.idle !== undefined && c.idle !== null) writeKnob(this.files, cpu(), 'cpu.idle', c.idle, `${field}.idle`);
    if (c.cpus) writeKnob(this.files, this.dirFor('cpuset', `${field}.cpus`), 'cpuset.cpus', c.cpus, `${field}.cpus`);
    if (c.mems) writeKnob(this.files, this.dirFor('cpuset', `${field}.mems`), 'cpuset.mems', c.mems, `${field}.mems`);
  }

  private setBlockIO(b: BlockIOResources): void {
    const field = 'linux.resources.blockIO';
    const blkio = (): string => this.dirFor('blkio', field);
    const weightFile = (dir: string): string =>
      this.files.exists(path.join(dir, 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
    if (b.weight) writeKnob(this.files, blkio(), weightFile(blkio()), b.weight, `${field}.weight`);
    if (b.leafWeight) writeKnob(this.files, blkio(), 'blkio.leaf_weight', b.leafWeight, `${field}.leafWeight`);
    (b.weightDevice ?? []).forEach((d, i) => {
      if (d.weight)
        writeKnob(
          this.files,
          blkio(),
          weightFile(blkio()).replace('weight', 'weight_device'),
          `${d.major}:${d.minor} ${d.weight}`,
          `${field}.weightDevice[${i}]`,
        );
      if (d.leafWeight)
        writeKnob(
          this.files,
          blkio(),
          'blkio.leaf_weight_device',
          `${d.major}:${d.minor} ${d.leafWeight}`,
          `${field}.weightDevice[${i}]`,
        );
    });
    const throttles: Array<[keyof BlockIOResources & `throttle${string}`, string]> = [
      ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device'],
      ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device'],
      ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device'],
      ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device'],
    ];
    for (const [key, file] of throttles) {
      (b[key] ?? []).forEach((d, i) =>
        writeKnob(this.files, blkio(), file, `${d.major}:${d.minor} ${d.rate}`, `${field}.${key}[${i}]`),
      );
    }
  }

  private setHugepages(h: { pageSize: string; limit: number }, field: string): void {
    const v1 = this.withController('hugetlb');
    if (v1) return writeKnob(this.files, v1.dir, `hugetlb.${h.pageSize}.limit_in_bytes`, h.limit, field);
    const unified = this.unified();
    if (unified?.controllers.includes('hugetlb')) {
      enableInParents(this.files, unified, 'hugetlb');
      return writeKnob(this.files, unified.dir, `hugetlb.${h.pageSize}.max`, h.limit, field);
    }
    throw new MissingControllerError('hugetlb', field);
  }

  private setNetwork(n: NonNullable<LinuxResources['network']>): void {
    const field = 'linux.resources.network';
    if (n.classID !== undefined)
      writeKnob(
        this.files,
        this.dirFor('net_cls', `${field}.classID`),
        'net_cls.classid',
        n.classID,
        `${field}.classID`,
      );
    (n.priorities ?? []).forEach((p, i) =>
      writeKnob(
        this.files,
        this.dirFor('net_prio', `${field}.priorities`),
        'net_prio.ifpriomap',
        `${p.name} ${p.priority}`,
        `${field}.priorities[${i}]`,
      ),
    );
  }

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

  private setDevices(rules: readonly DeviceRuleConfig[]): void {
    const field = 'linux.resources.devices';
    const dir = this.dirFor('devices', field);
    const all = containerDeviceRules(rules, this.deviceDefaults, field);
    // The kernel would take a hole punched in a wider rule without a word, and keep the wider one.
    effectiveDeviceRules(all, field);
    // Start from nothing allowed, then the rules in order.
    writeKnob(this.files, dir, 'devices.deny', 'a', field);
    for (const rule of all)
      writeKnob(this.files, dir, rule.allow ? 'devices.allow' : 'devices.deny', v1DeviceRule(rule), field);
  }

  private freezerDir(): string {
    return this.dirFor('freezer', 'pause');
  }

  freeze(): void {
    const dir = this.freezerDir();
    writeKnob(this.files, dir, 'freezer.state', 'FROZEN', 'pause');
    for (let i = 0; i < 1000; i++) {
      if (readOr(this.files, path.join(dir, 'freezer.state'), '').trim() === 'FROZEN') return;
      this.sleep(1);
      writeKnob(this.files, dir, 'freezer.state', 'FROZEN', 'pause'); // FREEZING can stall on a forking task
    }
    throw new TsrunError('pause: the cgroup did not freeze');
  }

  thaw(): void {
    writeKnob(this.files, this.freezerDir(), 'freezer.state', 'THAWED', 'resume');
  }

  isFrozen(): boolean {
    const h = this.withController('freezer');
    return !!h && readOr(this.files, path.join(h.dir, 'freezer.state'), 'THAWED').trim() !== 'THAWED';
  }

  killAll(signal: number, pids: () => number[]): void {
    signalFrozen(this, pids, signal, !!this.withController('freezer'));
  }

  private read(controller: string, file: string): string | undefined {
    const h = this.withController(controller);
    if (!h) return undefined;
    return this.files.read(path.join(h.dir, file))?.trim();
  }

  private u64(controller: string, file: string): U64 {
    const h = this.withController(controller);
    return h ? u64Of(this.files.read(path.join(h.dir, file))) : 0n;
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
      (p) => blkioDir && this.files.exists(path.join(blkioDir, `${p}io_service_bytes_recursive`)),
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
      ? this.files.entries(hugetlbDir).filter((f) => /^hugetlb\.[^.]+\.usage_in_bytes$/.test(f))
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

/** A cgroup2 controller must be enabled in every ancestor's subtree_control. */
export function enableInParents(files: CgroupFiles, h: { mountPoint: string; dir: string }, controller: string): void {
  const rel = path.relative(h.mountPoint, h.dir).split('/').filter(Boolean);
  let dir = h.mountPoint;
  for (const part of rel) {
    const enabled = readOr(files, path.join(dir, 'cgroup.subtree_control'), '').split(/\s+/);
    if (!enabled.includes(controller))
      writeKnob(files, dir, 'cgroup.subtree_control', `+${controller}`, `enable ${controller}`);
    dir = path.join(dir, part);
  }
}

export function validateUnifiedKey(key: string, field: string): void {
  if (!/^[a-z_]+\.[a-z0-9_.]+$/.test(key) || key.includes('..'))
    throw new TsrunError(`${field}: ${JSON.stringify(key)} is not a cgroup2 file name`);
}
