/**
 * linux.resources, typed as config.ts checks it (checkResources): what the
 * version writers (v1.ts, v2.ts) and `update` read.  runtime-spec's
 * shapes; what each value means is the writers' business.
 */

export interface DeviceRuleConfig {
  allow: boolean;
  type?: string;
  major?: number | null;
  minor?: number | null;
  access?: string;
}

export interface MemoryResources {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
}

export interface CpuResources {
  shares?: number;
  quota?: number;
  burst?: number | null;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number | null;
}

export interface DeviceRate {
  major: number;
  minor: number;
  rate: number;
}

export interface BlockIOResources {
  weight?: number;
  leafWeight?: number;
  weightDevice?: Array<{ major: number; minor: number; weight?: number; leafWeight?: number }>;
  throttleReadBpsDevice?: DeviceRate[];
  throttleWriteBpsDevice?: DeviceRate[];
  throttleReadIOPSDevice?: DeviceRate[];
  throttleWriteIOPSDevice?: DeviceRate[];
}

export interface LinuxResources {
  devices?: DeviceRuleConfig[];
  memory?: MemoryResources;
  cpu?: CpuResources;
  pids?: { limit?: number };
  blockIO?: BlockIOResources;
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  network?: { classID?: number; priorities?: Array<{ name: string; priority: number }> };
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
}

/**
 * What a new container's cgroup is given: its linux.resources, with the
 * device rules always there.  runc starts every container from "nothing
 * allowed" plus its default allow-list, whether the config lists device
 * rules or not; without this a config with no linux.resources.devices
 * would leave the container every device its parent cgroup allows (the
 * host's root cgroup allows them all), and CAP_MKNOD would open any of
 * them.  `update` writes only what it is given.
 */
export function resourcesAtCreate(r: LinuxResources | undefined): LinuxResources {
  return { ...r, devices: r?.devices ?? [] };
}
