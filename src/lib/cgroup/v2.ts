/**
 * The cgroup v2 version writer, for unified hosts: limits, freezing and
 * stats in the container's one directory, wherever a placement manager
 * put it (manager.ts).  Values follow runc's conversions from the
 * (v1-shaped) runtime-spec fields: shares -> cpu.weight, blkio weight ->
 * io.weight, swap -> memory.swap.max as swap minus limit.  Device rules
 * become an eBPF program (devices-bpf.ts) that the addon loads.
 */
import path = require('path');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { keyValues, listOf, memoryEntry, omitEmpty, sortedMap, u64Of } from './stats';
import { compileDeviceProgram } from './devices-bpf';
import { containerDeviceRules, type DeviceRule, effectiveDeviceRules } from './devices';
import { type CgroupFiles, readOr, writeKnob } from './files';
import { signalFrozen, type VersionWriter } from './manager';
import {
  type BlockIOResources,
  type CpuResources,
  type DeviceRuleConfig,
  type LinuxResources,
  type MemoryResources,
} from './resources';
import { validateUnifiedKey } from './v1';

/** runc's cpu.shares (2..262144) to cpu.weight (1..10000). */
export function sharesToWeight(shares: number): number {
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** runc's blkio weight (10..1000) to io.weight (1..10000). */
export function blkioToIoWeight(weight: number): number {
  return Math.floor(1 + ((weight - 10) * 9999) / 990);
}

/** runtime-spec swap is memory+swap; cgroup v2 wants the swap part alone. */
export function swapMax(limit: number | undefined, swap: number): string {
  if (swap === -1) return 'max';
  if (limit === undefined || limit === -1)
    throw new TsrunError('linux.resources.memory.swap: needs memory.limit on cgroup v2');
  if (swap < limit) throw new TsrunError(`linux.resources.memory.swap: ${swap} is below memory.limit ${limit}`);
  return String(swap - limit);
}

export class V2Writer implements VersionWriter {
  readonly devicesInSteps = false;
  /**
   * @param dir the container's cgroup directory
   * @param attachDeviceProgram loads the device filter (the addon's, in tsrun)
   * @param deviceDefaults the rules after the config's (defaultDeviceRules)
   */
  constructor(
    readonly dir: string,
    private readonly files: CgroupFiles,
    private readonly sleep: (ms: number) => void,
    private readonly attachDeviceProgram: (dir: string, program: Buffer) => void,
    private readonly deviceDefaults: readonly DeviceRule[],
  ) {}

  private write(file: string, value: string | number, field: string): void {
    writeKnob(this.files, this.dir, file, value, field);
  }

  set(resources: LinuxResources | undefined): void {
    if (!resources) return;
    const r = resources;
    if (r.memory) this.setMemory(r.memory);
    if (r.cpu) this.setCpu(r.cpu);
    if (r.pids && r.pids.limit !== undefined && r.pids.limit !== 0)
      this.write('pids.max', r.pids.limit > 0 ? r.pids.limit : 'max', 'linux.resources.pids.limit');
    if (r.blockIO) this.setIo(r.blockIO);
    (r.hugepageLimits ?? []).forEach((h, i) =>
      this.write(`hugetlb.${h.pageSize}.max`, h.limit, `linux.resources.hugepageLimits[${i}]`),
    );
    if (r.network && (r.network.classID !== undefined || r.network.priorities?.length))
      throw new TsrunError('linux.resources.network: cgroup v2 has no net_cls/net_prio controllers');
    for (const [device, l] of Object.entries(r.rdma ?? {})) {
      const parts = [
        l.hcaHandles !== undefined ? `hca_handle=${l.hcaHandles}` : '',
        l.hcaObjects !== undefined ? `hca_object=${l.hcaObjects}` : '',
      ].filter(Boolean);
      this.write('rdma.max', `${device} ${parts.join(' ')}`, `linux.resources.rdma.${device}`);
    }
    for (const [key, value] of Object.entries(r.unified ?? {})) {
      validateUnifiedKey(key, 'linux.resources.unified');
      this.write(key, value, `linux.resources.unified.${key}`);
    }
    if (r.devices) this.setDevices(r.devices);
  }

  private setMemory(m: MemoryResources): void {
    const field = 'linux.resources.memory';
    const limit = m.limit && m.limit !== 0 ? m.limit : undefined;
    if (m.checkBeforeUpdate && limit !== undefined && limit !== -1) {
      const usage = Number(readOr(this.files, path.join(this.dir, 'memory.current'), '0'));
      if (limit < usage)
        throw new TsrunError(`${field}.limit: ${limit} is below the current usage ${usage} (checkBeforeUpdate)`);
    }
    if (limit !== undefined) this.write('memory.max', limit === -1 ? 'max' : limit, `${field}.limit`);
    if (m.swap && m.swap !== 0)
      this.write('memory.swap.max', swapMax(limit ?? this.currentLimit(), m.swap), `${field}.swap`);
    if (m.reservation) this.write('memory.low', m.reservation, `${field}.reservation`);
    if (m.swappiness !== undefined && m.swappiness !== -1 && m.swappiness !== null)
      throw new TsrunError(`${field}.swappiness: cgroup v2 has no per-cgroup swappiness`);
    if (m.disableOOMKiller) throw new TsrunError(`${field}.disableOOMKiller: cgroup v2 cannot disable the OOM killer`);
    if (m.useHierarchy === false) throw new TsrunError(`${field}.useHierarchy: cgroup v2 is always hierarchical`);
    for (const key of ['kernel', 'kernelTCP'] as const)
      if (m[key]) warn(`${field}.${key}: cgroup v2 has no separate kernel memory limit; not applied`);
  }

  private currentLimit(): number | undefined {
    const text = readOr(this.files, path.join(this.dir, 'memory.max'), 'max').trim();
    return text === 'max' ? -1 : Number(text);
  }

  private setCpu(c: CpuResources): void {
    const field = 'linux.resources.cpu';
    if (c.shares) this.write('cpu.weight', sharesToWeight(c.shares), `${field}.shares`);
    if (c.quota || c.period) {
      const quota = c.quota && c.quota > 0 ? String(c.quota) : 'max';
      const period =
        c.period ||
        Number(readOr(this.files, path.join(this.dir, 'cpu.max'), 'max 100000').trim().split(' ')[1] ?? 100000);
      this.write('cpu.max', `${quota} ${period}`, c.quota ? `${field}.quota` : `${field}.period`);
    }
    if (c.burst !== undefined && c.burst !== null) this.write('cpu.max.burst', c.burst, `${field}.burst`);
    if (c.idle !== undefined && c.idle !== null) this.write('cpu.idle', c.idle, `${field}.idle`);
    if (c.realtimeRuntime || c.realtimePeriod)
      throw new TsrunError(`${field}.realtimeRuntime: cgroup v2 has no realtime CPU scheduling knobs`);
    if (c.cpus) this.write('cpuset.cpus', c.cpus, `${field}.cpus`);
    if (c.mems) this.write('cpuset.mems', c.mems, `${field}.mems`);
  }

  private setIo(b: BlockIOResources): void {
    const field = 'linux.resources.blockIO';
    const bfq = this.files.exists(path.join(this.dir, 'io.bfq.weight'));
    if (b.weight)
      this.write(bfq ? 'io.bfq.weight' : 'io.weight', bfq ? b.weight : blkioToIoWeight(b.weight), `${field}.weight`);
    if (b.leafWeight) throw new TsrunError(`${field}.leafWeight: cgroup v2 has no leaf weight`);
    (b.weightDevice ?? []).forEach((d, i) => {
      if (d.weight)
        this.write(
          bfq ? 'io.bfq.weight' : 'io.weight',
          `${d.major}:${d.minor} ${bfq ? d.weight : blkioToIoWeight(d.weight)}`,
          `${field}.weightDevice[${i}]`,
        );
    });
    const throttles: Array<[keyof BlockIOResources & `throttle${string}`, string]> = [
      ['throttleReadBpsDevice', 'rbps'],
      ['throttleWriteBpsDevice', 'wbps'],
      ['throttleReadIOPSDevice', 'riops'],
      ['throttleWriteIOPSDevice', 'wiops'],
    ];
    for (const [key, name] of throttles) {
      (b[key] ?? []).forEach((d, i) =>
        this.write('io.max', `${d.major}:${d.minor} ${name}=${d.rate}`, `${field}.${key}[${i}]`),
      );
    }
  }

  /** The config's rules, then the defaults, compiled as what they come to on v1 (devices-bpf.ts). */
  private setDevices(rules: readonly DeviceRuleConfig[]): void {
    const field = 'linux.resources.devices';
    const program = compileDeviceProgram(
      effectiveDeviceRules(containerDeviceRules(rules, this.deviceDefaults, field), field),
    );
    try {
      this.attachDeviceProgram(this.dir, program);
    } catch (err) {
      throw new TsrunError(`linux.resources.devices: load the device filter: ${(err as Error).message}`);
    }
  }

  freeze(): void {
    this.write('cgroup.freeze', 1, 'pause');
    for (let i = 0; i < 2000; i++) {
      if (/^frozen 1$/m.test(readOr(this.files, path.join(this.dir, 'cgroup.events'), ''))) return;
      this.sleep(1);
    }
    throw new TsrunError('pause: the cgroup did not freeze');
  }

  thaw(): void {
    this.write('cgroup.freeze', 0, 'resume');
  }

  isFrozen(): boolean {
    return readOr(this.files, path.join(this.dir, 'cgroup.freeze'), '0').trim() === '1';
  }

  killAll(signal: number, pids: () => number[]): void {
    if (signal === 9 && this.files.exists(path.join(this.dir, 'cgroup.kill')))
      return this.write('cgroup.kill', 1, 'kill --all');
    signalFrozen(this, pids, signal);
  }

  /** runc's Stats for cgroup v2 (its fs2 readers; see stats.ts for the JSON rules). */
  stats(): Record<string, unknown> {
    const file = (name: string) => path.join(this.dir, name);
    const u64 = (name: string): bigint => u64Of(this.files.read(file(name)));
    const cpu = keyValues(readOr(this.files, file('cpu.stat'), ''));
    const mem = keyValues(readOr(this.files, file('memory.stat'), ''));
    const events = keyValues(readOr(this.files, file('memory.events'), ''));
    const io = this.ioStats();
    return {
      cpu: {
        usage: {
          ...omitEmpty({ total: (cpu.usage_usec ?? 0n) * 1000n }),
          kernel: (cpu.system_usec ?? 0n) * 1000n,
          user: (cpu.user_usec ?? 0n) * 1000n,
        },
        throttling: omitEmpty({
          periods: cpu.nr_periods,
          throttledPeriods: cpu.nr_throttled,
          throttledTime: (cpu.throttled_usec ?? 0n) * 1000n,
        }),
      },
      cpuset: {
        ...omitEmpty({ cpus: listOf(readOr(this.files, file('cpuset.cpus.effective'), '')) }),
        cpu_exclusive: 0n,
        ...omitEmpty({ mems: listOf(readOr(this.files, file('cpuset.mems.effective'), '')) }),
        mem_hardwall: 0n,
        mem_exclusive: 0n,
        memory_migrate: 0n,
        memory_spread_page: 0n,
        memory_spread_slab: 0n,
        memory_pressure: 0n,
        sched_load_balance: 0n,
        sched_relax_domain_level: 0n,
      },
      memory: {
        ...omitEmpty({ cache: mem.file }),
        usage: memoryEntry({
          limit: u64('memory.max'),
          usage: u64('memory.current'),
          max: u64('memory.peak'),
          failcnt: events.max ?? 0n,
        }),
        // runc's v1-shaped swap: memory and swap together.
        swap: memoryEntry({
          limit:
            u64('memory.swap.max') === 0xffffffffffffffffn || u64('memory.max') === 0xffffffffffffffffn
              ? 0xffffffffffffffffn
              : u64('memory.swap.max') + u64('memory.max'),
          usage: u64('memory.swap.current') + u64('memory.current'),
          max: 0n,
          failcnt: 0n,
        }),
        ...omitEmpty({ raw: Object.keys(mem).length ? sortedMap(mem) : undefined }),
      },
      pids: omitEmpty({
        current: u64('pids.current'),
        limit: u64('pids.max') === 0xffffffffffffffffn ? 0n : u64('pids.max'),
      }),
      blkio: omitEmpty(io),
      hugetlb: {},
      intel_rdt: {},
      network_interfaces: null,
    };
  }

  /** io.stat as runc's v1-shaped entries: Read, Write per device ("rbytes", "wbytes", "rios", "wios"). */
  private ioStats(): {
    ioServiceBytesRecursive: Array<Record<string, unknown>>;
    ioServicedRecursive: Array<Record<string, unknown>>;
  } {
    const bytes: Array<Record<string, unknown>> = [];
    const ios: Array<Record<string, unknown>> = [];
    for (const line of readOr(this.files, path.join(this.dir, 'io.stat'), '').split('\n').filter(Boolean)) {
      const [dev, ...pairs] = line.trim().split(/\s+/);
      const [major, minor] = dev.split(':').map((n) => BigInt(n));
      const kv = Object.fromEntries(pairs.map((p) => p.split('=')).map(([k, v]) => [k, BigInt(v)]));
      for (const [list, key, op] of [
        [bytes, 'rbytes', 'Read'],
        [bytes, 'wbytes', 'Write'],
        [ios, 'rios', 'Read'],
        [ios, 'wios', 'Write'],
      ] as const) {
        if (kv[key] !== undefined) list.push(omitEmpty({ major, minor, op, value: kv[key] }));
      }
    }
    return { ioServiceBytesRecursive: bytes, ioServicedRecursive: ios };
  }

  oomKills(): number {
    const line = readOr(this.files, path.join(this.dir, 'memory.events'), '')
      .split('\n')
      .find((l) => l.startsWith('oom_kill '));
    return line ? Number(line.split(' ')[1]) : 0;
  }
}
