/**
 * The cgroup v2 driver, for unified hosts.  One directory per container;
 * the controllers it needs are enabled in every ancestor's
 * cgroup.subtree_control.  Values follow runc's conversions from the
 * (v1-shaped) runtime-spec fields: shares -> cpu.weight, blkio weight ->
 * io.weight, swap -> memory.swap.max as swap minus limit.  Device rules
 * become an eBPF program (devices-bpf.ts) that the addon loads.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { warn } from '../log';
import { sleepSync } from '../sleep';
import { keyValues, listOf, memoryEntry, omitEmpty, readU64, sortedMap } from './stats';
import { native } from '../native';
import { compileDeviceProgram } from './devices-bpf';
import { DEFAULT_DEVICE_RULES, parseDeviceRules } from './devices';
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
import { validateUnifiedKey } from './v1';

// linux.resources as config.json has it: typed when the cgroup layer is rebuilt as manager x version.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

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

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

export class CgroupV2 implements CgroupManager {
  readonly dir: string;

  constructor(
    private readonly hierarchy: Hierarchy,
    cgroupsPath: string | undefined,
    id: string,
    existing?: CgroupState,
  ) {
    if (existing) {
      this.dir = existing.paths[hierarchy.mountPoint];
    } else {
      const rel = cgroupRelativePath(cgroupsPath, id, ownCgroups().get('') ?? '/');
      this.dir = path.join(hierarchy.mountPoint, rel);
    }
  }

  describe(): CgroupState {
    return { driver: 'v2', paths: { [this.hierarchy.mountPoint]: this.dir } };
  }

  /** mkdir each level, enabling in its parent every controller the parent can give. */
  create(): void {
    let dir = this.hierarchy.mountPoint;
    for (const part of path.relative(this.hierarchy.mountPoint, this.dir).split('/').filter(Boolean)) {
      const available = readOr(path.join(dir, 'cgroup.controllers'), '').trim().split(/\s+/).filter(Boolean);
      const enabled = new Set(readOr(path.join(dir, 'cgroup.subtree_control'), '').trim().split(/\s+/));
      const missing = available.filter((c) => !enabled.has(c));
      if (missing.length) {
        try {
          fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
        } catch {
          // One at a time, so a controller the kernel refuses here (e.g. a threaded subtree) does not block the rest.
          for (const c of missing) {
            try {
              fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), `+${c}`);
            } catch {
              // set() names the knob if this container needs it
            }
          }
        }
      }
      dir = path.join(dir, part);
      if (!fs.existsSync(dir)) fs.mkdirSync(dir);
    }
  }

  /** One tree: a sub-cgroup for all (runc refuses per-controller paths on cgroup v2 too). */
  private target(sub?: SubCgroups): string {
    if (!sub) return this.dir;
    const named = Object.keys(sub).filter((c) => c !== '');
    if (named.length)
      throw new TsrunError(
        `--cgroup: per-controller paths (${named.join(', ')}) need cgroup v1; on cgroup v2 give one path`,
      );
    return subCgroupDir(this.dir, sub['']);
  }

  cloneTarget(sub?: SubCgroups): string {
    return this.target(sub);
  }

  joinTargets(): string[] {
    return []; // cloned straight in
  }

  apply(pid: number, sub?: SubCgroups): void {
    writeKnob(this.target(sub), 'cgroup.procs', pid, sub ? '--cgroup' : 'linux.cgroupsPath');
  }

  private write(file: string, value: string | number, field: string): void {
    writeKnob(this.dir, file, value, field);
  }

  set(resources: Json | undefined): void {
    if (!resources) return;
    const r = resources;
    if (r.memory) this.setMemory(r.memory);
    if (r.cpu) this.setCpu(r.cpu);
    if (r.pids && r.pids.limit !== undefined && r.pids.limit !== 0)
      this.write('pids.max', r.pids.limit > 0 ? r.pids.limit : 'max', 'linux.resources.pids.limit');
    if (r.blockIO) this.setIo(r.blockIO);
    (r.hugepageLimits ?? []).forEach((h: Json, i: number) =>
      this.write(`hugetlb.${h.pageSize}.max`, h.limit, `linux.resources.hugepageLimits[${i}]`),
    );
    if (r.network && (r.network.classID !== undefined || r.network.priorities?.length))
      throw new TsrunError('linux.resources.network: cgroup v2 has no net_cls/net_prio controllers');
    for (const [device, l] of Object.entries((r.rdma ?? {}) as Record<string, Json>)) {
      const parts = [
        l.hcaHandles !== undefined ? `hca_handle=${l.hcaHandles}` : '',
        l.hcaObjects !== undefined ? `hca_object=${l.hcaObjects}` : '',
      ].filter(Boolean);
      this.write('rdma.max', `${device} ${parts.join(' ')}`, `linux.resources.rdma.${device}`);
    }
    for (const [key, value] of Object.entries((r.unified ?? {}) as Record<string, string>)) {
      validateUnifiedKey(key, 'linux.resources.unified');
      this.write(key, value, `linux.resources.unified.${key}`);
    }
    if (r.devices) this.setDevices(r.devices);
  }

  private setMemory(m: Json): void {
    const field = 'linux.resources.memory';
    const limit = m.limit && m.limit !== 0 ? m.limit : undefined;
    if (m.checkBeforeUpdate && limit !== undefined && limit !== -1) {
      const usage = Number(readOr(path.join(this.dir, 'memory.current'), '0'));
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
    for (const key of ['kernel', 'kernelTCP'])
      if (m[key]) warn(`${field}.${key}: cgroup v2 has no separate kernel memory limit; not applied`);
  }

  private currentLimit(): number | undefined {
    const text = readOr(path.join(this.dir, 'memory.max'), 'max').trim();
    return text === 'max' ? -1 : Number(text);
  }

  private setCpu(c: Json): void {
    const field = 'linux.resources.cpu';
    if (c.shares) this.write('cpu.weight', sharesToWeight(c.shares), `${field}.shares`);
    if (c.quota || c.period) {
      const quota = c.quota && c.quota > 0 ? String(c.quota) : 'max';
      const period =
        c.period || Number(readOr(path.join(this.dir, 'cpu.max'), 'max 100000').trim().split(' ')[1] ?? 100000);
      this.write('cpu.max', `${quota} ${period}`, c.quota ? `${field}.quota` : `${field}.period`);
    }
    if (c.burst !== undefined && c.burst !== null) this.write('cpu.max.burst', c.burst, `${field}.burst`);
    if (c.idle !== undefined && c.idle !== null) this.write('cpu.idle', c.idle, `${field}.idle`);
    if (c.realtimeRuntime || c.realtimePeriod)
      throw new TsrunError(`${field}.realtimeRuntime: cgroup v2 has no realtime CPU scheduling knobs`);
    if (c.cpus) this.write('cpuset.cpus', c.cpus, `${field}.cpus`);
    if (c.mems) this.write('cpuset.mems', c.mems, `${field}.mems`);
  }

  private setIo(b: Json): void {
    const field = 'linux.resources.blockIO';
    const bfq = fs.existsSync(path.join(this.dir, 'io.bfq.weight'));
    if (b.weight)
      this.write(bfq ? 'io.bfq.weight' : 'io.weight', bfq ? b.weight : blkioToIoWeight(b.weight), `${field}.weight`);
    if (b.leafWeight) throw new TsrunError(`${field}.leafWeight: cgroup v2 has no leaf weight`);
    (b.weightDevice ?? []).forEach((d: Json, i: number) => {
      if (d.weight)
        this.write(
          bfq ? 'io.bfq.weight' : 'io.weight',
          `${d.major}:${d.minor} ${bfq ? d.weight : blkioToIoWeight(d.weight)}`,
          `${field}.weightDevice[${i}]`,
        );
    });
    const throttles: Array<[string, string]> = [
      ['throttleReadBpsDevice', 'rbps'],
      ['throttleWriteBpsDevice', 'wbps'],
      ['throttleReadIOPSDevice', 'riops'],
      ['throttleWriteIOPSDevice', 'wiops'],
    ];
    for (const [key, name] of throttles) {
      (b[key] ?? []).forEach((d: Json, i: number) =>
        this.write('io.max', `${d.major}:${d.minor} ${name}=${d.rate}`, `${field}.${key}[${i}]`),
      );
    }
  }

  /** runc's semantics: the config's rules, then the default allow-list; first match wins from the end. */
  private setDevices(rules: Json[]): void {
    const program = compileDeviceProgram([...parseDeviceRules(rules), ...DEFAULT_DEVICE_RULES]);
    try {
      native.attachDeviceProgram(this.dir, program);
    } catch (err) {
      throw new TsrunError(`linux.resources.devices: load the device filter: ${(err as Error).message}`);
    }
  }

  freeze(): void {
    this.write('cgroup.freeze', 1, 'pause');
    for (let i = 0; i < 2000; i++) {
      if (/^frozen 1$/m.test(readOr(path.join(this.dir, 'cgroup.events'), ''))) return;
      sleepSync(1);
    }
    throw new TsrunError('pause: the cgroup did not freeze');
  }

  thaw(): void {
    this.write('cgroup.freeze', 0, 'resume');
  }

  isFrozen(): boolean {
    return readOr(path.join(this.dir, 'cgroup.freeze'), '0').trim() === '1';
  }

  /** Processes here and in sub-cgroups (exec --cgroup puts some there). */
  pids(): number[] {
    return treePids(this.dir);
  }

  killAll(signal: number): void {
    if (signal === 9 && fs.existsSync(path.join(this.dir, 'cgroup.kill')))
      return this.write('cgroup.kill', 1, 'kill --all');
    signalFrozen(this, signal);
  }

  /** runc's Stats for cgroup v2 (its fs2 readers; see stats.ts for the JSON rules). */
  stats(): Record<string, unknown> {
    const file = (name: string) => path.join(this.dir, name);
    const cpu = keyValues(readOr(file('cpu.stat'), ''));
    const mem = keyValues(readOr(file('memory.stat'), ''));
    const events = keyValues(readOr(file('memory.events'), ''));
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
        ...omitEmpty({ cpus: listOf(readOr(file('cpuset.cpus.effective'), '')) }),
        cpu_exclusive: 0n,
        ...omitEmpty({ mems: listOf(readOr(file('cpuset.mems.effective'), '')) }),
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
          limit: readU64(file('memory.max')),
          usage: readU64(file('memory.current')),
          max: readU64(file('memory.peak')),
          failcnt: events.max ?? 0n,
        }),
        // runc's v1-shaped swap: memory and swap together.
        swap: memoryEntry({
          limit:
            readU64(file('memory.swap.max')) === 0xffffffffffffffffn ||
            readU64(file('memory.max')) === 0xffffffffffffffffn
              ? 0xffffffffffffffffn
              : readU64(file('memory.swap.max')) + readU64(file('memory.max')),
          usage: readU64(file('memory.swap.current')) + readU64(file('memory.current')),
          max: 0n,
          failcnt: 0n,
        }),
        ...omitEmpty({ raw: Object.keys(mem).length ? sortedMap(mem) : undefined }),
      },
      pids: omitEmpty({
        current: readU64(file('pids.current')),
        limit: readU64(file('pids.max')) === 0xffffffffffffffffn ? 0n : readU64(file('pids.max')),
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
    for (const line of readOr(path.join(this.dir, 'io.stat'), '').split('\n').filter(Boolean)) {
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
    const line = readOr(path.join(this.dir, 'memory.events'), '')
      .split('\n')
      .find((l) => l.startsWith('oom_kill '));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  destroy(): void {
    removeCgroupTree(this.dir);
  }
}
