/**
 * The process attributes the kernel keeps per task and the helper sets
 * with one syscall each, right before the user switch (runc's order:
 * scheduler, I/O priority, personality, memory policy):
 *
 *   process.scheduler       sched_setattr(2)
 *   process.ioPriority      ioprio_set(2)
 *   linux.personality       personality(2)
 *   linux.memoryPolicy      set_mempolicy(2)
 *   process.execCPUAffinity sched_setaffinity(2), execs only (config.md:
 *                           "not applicable to the container's init")
 *
 * Pure: config in, plan ops out.  Values are checked by config.ts; this
 * file turns names into the kernel's numbers.
 */
import {
  type Config,
  type IOPriority,
  MAX_CPUS,
  MAX_NUMA_NODES,
  type MemoryPolicy,
  parseCpuList,
  type Personality,
  type Process,
  type Scheduler,
} from './config';
import { AffinityStage, Op, type PlanOp } from './plan-format';

/** include/uapi/linux/sched.h */
const SCHED_POLICY: Record<Scheduler['policy'], number> = {
  SCHED_OTHER: 0,
  SCHED_FIFO: 1,
  SCHED_RR: 2,
  SCHED_BATCH: 3,
  SCHED_ISO: 4,
  SCHED_IDLE: 5,
  SCHED_DEADLINE: 6,
};
const SCHED_FLAG: Record<NonNullable<Scheduler['flags']>[number], bigint> = {
  SCHED_FLAG_RESET_ON_FORK: 0x01n,
  SCHED_FLAG_RECLAIM: 0x02n,
  SCHED_FLAG_DL_OVERRUN: 0x04n,
  SCHED_FLAG_KEEP_POLICY: 0x08n,
  SCHED_FLAG_KEEP_PARAMS: 0x10n,
  SCHED_FLAG_UTIL_CLAMP_MIN: 0x20n,
  SCHED_FLAG_UTIL_CLAMP_MAX: 0x40n,
};
/** include/uapi/linux/ioprio.h */
const IOPRIO_CLASS: Record<IOPriority['class'], number> = {
  IOPRIO_CLASS_RT: 1,
  IOPRIO_CLASS_BE: 2,
  IOPRIO_CLASS_IDLE: 3,
};
const IOPRIO_CLASS_SHIFT = 13;
/** include/uapi/linux/personality.h */
const PERSONA: Record<Personality['domain'], number> = { LINUX: 0x0000, LINUX32: 0x0008 };
/** include/uapi/linux/mempolicy.h */
const MPOL_MODE: Record<MemoryPolicy['mode'], number> = {
  MPOL_DEFAULT: 0,
  MPOL_PREFERRED: 1,
  MPOL_BIND: 2,
  MPOL_INTERLEAVE: 3,
  MPOL_LOCAL: 4,
  MPOL_PREFERRED_MANY: 5,
  MPOL_WEIGHTED_INTERLEAVE: 6,
};
const MPOL_FLAG: Record<NonNullable<MemoryPolicy['flags']>[number], number> = {
  MPOL_F_STATIC_NODES: 1 << 15,
  MPOL_F_RELATIVE_NODES: 1 << 14,
  MPOL_F_NUMA_BALANCING: 1 << 13,
};

/**
 * A bit mask of `numbers`, as the kernel reads cpumasks and nodemasks:
 * unsigned longs (64-bit, little-endian), bit n of long n/64.
 * `size` is the number of bits.
 */
export function bitMask(numbers: number[], size: number): Buffer {
  const mask = Buffer.alloc(Math.ceil(size / 64) * 8);
  for (const n of numbers) mask[n >> 3] |= 1 << (n & 7);
  return mask;
}

export function schedulerOp(scheduler: Scheduler, cpusetLimited: boolean): PlanOp {
  const flags = (scheduler.flags ?? []).reduce((all, flag) => all | SCHED_FLAG[flag], 0n);
  return {
    op: Op.SCHEDULER,
    fields: {
      policy: SCHED_POLICY[scheduler.policy],
      flags,
      nice: (scheduler.nice ?? 0) >>> 0, // read back as int32
      priority: scheduler.priority ?? 0,
      runtime: BigInt(scheduler.runtime ?? 0),
      deadline: BigInt(scheduler.deadline ?? 0),
      period: BigInt(scheduler.period ?? 0),
      cpusetLimited: cpusetLimited ? 1 : 0,
    },
  };
}

export function ioPriorityOp(ioPriority: IOPriority): PlanOp {
  return {
    op: Op.IOPRIO,
    fields: { value: (IOPRIO_CLASS[ioPriority.class] << IOPRIO_CLASS_SHIFT) | ioPriority.priority },
  };
}

export function personalityOp(personality: Personality): PlanOp {
  return { op: Op.PERSONALITY, fields: { persona: PERSONA[personality.domain] } };
}

export function memoryPolicyOp(policy: MemoryPolicy): PlanOp {
  const nodes = parseCpuList(policy.nodes ?? '', 'linux.memoryPolicy.nodes', MAX_NUMA_NODES, 'NUMA node');
  const flags = (policy.flags ?? []).reduce((all, flag) => all | MPOL_FLAG[flag], 0);
  return {
    op: Op.MEMPOLICY,
    fields: {
      mode: MPOL_MODE[policy.mode] | flags,
      // No nodes: a NULL mask (MPOL_DEFAULT, MPOL_LOCAL and a "local" MPOL_PREFERRED take none).
      nodemask: nodes.length ? bitMask(nodes, MAX_NUMA_NODES) : Buffer.alloc(0),
      maxnode: nodes.length ? MAX_NUMA_NODES : 0,
    },
  };
}

function affinityOp(stage: number, list: string, field: string): PlanOp {
  return { op: Op.CPU_AFFINITY, fields: { stage, mask: bitMask(parseCpuList(list, field, MAX_CPUS), MAX_CPUS) } };
}

/**
 * process.execCPUAffinity for an exec, as runc 1.2+ applies it: `initial`
 * from the start, before the container's cgroups are joined (the kernel
 * then narrows it to their cpuset); `final` once inside them.  An exec
 * that names neither is reset to every CPU, so it does not keep the
 * affinity tsrun itself was started with (runc's tryResetCPUAffinity);
 * one that names only `initial` keeps what the cgroups left of it.
 */
export function execAffinityOps(process: Process): { initial: PlanOp[]; final: PlanOp[] } {
  const affinity = process.execCPUAffinity;
  const field = 'process.execCPUAffinity';
  const initial = affinity?.initial ? [affinityOp(AffinityStage.INITIAL, affinity.initial, `${field}.initial`)] : [];
  if (affinity?.final) return { initial, final: [affinityOp(AffinityStage.FINAL, affinity.final, `${field}.final`)] };
  if (affinity?.initial) return { initial, final: [] };
  return {
    initial,
    final: [
      {
        op: Op.CPU_AFFINITY,
        fields: { stage: AffinityStage.RESET, mask: bitMask([...Array(MAX_CPUS).keys()], MAX_CPUS) },
      },
    ],
  };
}

/** What the container applies to every process of its own: the init and each exec. */
export interface ContainerProcessAttrs {
  personality?: Personality;
  memoryPolicy?: MemoryPolicy;
  /** linux.resources.cpu.cpus is set: explains the EPERM sched_setattr then gives. */
  cpusetLimited?: boolean;
}

export function containerProcessAttrs(config: Pick<Config, 'linux'>): ContainerProcessAttrs {
  const cpu = config.linux?.resources?.cpu as { cpus?: string } | undefined;
  return {
    personality: config.linux?.personality,
    memoryPolicy: config.linux?.memoryPolicy,
    cpusetLimited: !!cpu?.cpus,
  };
}

/** The ops that go right before the user switch, in runc's order. */
export function processAttrOps(process: Process, container: ContainerProcessAttrs): PlanOp[] {
  const ops: PlanOp[] = [];
  if (process.scheduler) ops.push(schedulerOp(process.scheduler, !!container.cpusetLimited));
  if (process.ioPriority) ops.push(ioPriorityOp(process.ioPriority));
  if (container.personality) ops.push(personalityOp(container.personality));
  if (container.memoryPolicy) ops.push(memoryPolicyOp(container.memoryPolicy));
  return ops;
}
