// The config.json written by `tsrun spec`, matching what `runc spec` writes.

import type { Config, Mount, Namespace } from './config';

export const DEFAULT_OCI_VERSION = '1.3.0';

const DEFAULT_CAPABILITIES = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
  '/proc/scsi',
];

const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function defaultMounts(): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
  ];
}

/**
 * Adapt the mounts for a container without root, as runc's spec --rootless
 * does: sysfs cannot be mounted in a user namespace that does not own the
 * network namespace, so /sys is bound from the host; gid=5 may not be
 * mapped.  The cgroup mount stays: in a user namespace each hierarchy is
 * bound from the cgroup the init is in.
 */
function rootlessMounts(mounts: Mount[]): Mount[] {
  return mounts.map((mount) => {
    if (mount.destination === '/sys') {
      return {
        destination: '/sys',
        type: 'none',
        source: '/sys',
        options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
      };
    }
    if (!mount.options) return mount;
    return { ...mount, options: mount.options.filter((option) => !/^[ug]id=/.test(option)) };
  });
}

/**
 * `cgroupNamespace`: the host is cgroup2-only.  runc's spec adds a cgroup
 * namespace only then; on a v1 or hybrid host it leaves the container in
 * the host's, as Docker does there.
 */
export function defaultSpec(opts: { rootless: boolean; args?: string[]; cgroupNamespace: boolean }): Config {
  const namespaces: Namespace[] = [
    { type: 'pid' },
    { type: 'network' },
    { type: 'ipc' },
    { type: 'uts' },
    { type: 'mount' },
    ...(opts.cgroupNamespace ? [{ type: 'cgroup' } as Namespace] : []),
  ];
  const spec: Config = {
    ociVersion: DEFAULT_OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: opts.args && opts.args.length > 0 ? [...opts.args] : ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      // Inheritable and ambient stay empty on purpose (CVE-2022-29162): filling
      // them lets unprivileged processes in the container keep capabilities across execve.
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'tsrun',
    mounts: defaultMounts(),
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };

  if (opts.rootless) {
    const linux = spec.linux!;
    // A user namespace without its own network namespace keeps host networking usable.
    linux.namespaces = [...namespaces.filter((namespace) => namespace.type !== 'network'), { type: 'user' }];
    linux.uidMappings = [{ containerID: 0, hostID: process.geteuid!(), size: 1 }];
    linux.gidMappings = [{ containerID: 0, hostID: process.getegid!(), size: 1 }];
    delete linux.resources;
    spec.mounts = rootlessMounts(spec.mounts!);
  }
  return spec;
}
