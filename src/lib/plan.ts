/**
 * The plan compiler: a validated config.json in, the ordered list of ops
 * that tsrun-init executes out.  Every decision about the container is
 * made here, in TypeScript, where it can be unit-tested without root; the
 * helper only carries the ops out.  Anything the compiler needs from the
 * host (does a mount source exist, which cgroup hierarchies are mounted)
 * comes through `HostView`, so tests can describe a host instead of
 * touching one.
 */
import path = require('path');
import {
  type Config,
  ConfigError,
  type Device,
  type Hook,
  type IDMapping,
  type Mount,
  type NamespaceType,
  type Process,
} from './config';
import { capabilityMasks } from './capabilities';
import { MOUNT_ATTR, MS, parseMountOptions } from './mount-options';
import { CLONE_FLAGS, JOIN_ORDER } from './namespaces';
import { type CgroupTargets, placeProcess, type ProcessPlacement } from './cgroup/placement';
import { type ContainerProcessAttrs, containerProcessAttrs, execAffinityOps, processAttrOps } from './process-attrs';
import { type LoadableSeccomp } from './seccomp';
import {
  ChdirStage,
  CreateKind,
  HookStage,
  MountKind,
  mountOp,
  Op,
  PivotMode,
  planOp as op,
  type PlanOp,
} from './plan-format';

export const RLIMIT_NUMBERS: Record<string, number> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** The devices every container gets, as runc creates them. */
export const DEFAULT_DEVICES: Device[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

export const DEFAULT_DEV_SYMLINKS: Array<[target: string, link: string]> = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['pts/ptmx', '/dev/ptmx'],
];

/** A mounted cgroup hierarchy of the host, as /proc/self/mountinfo shows it. */
export interface CgroupHierarchy {
  /** Directory name under the cgroup root, e.g. "cpu,cpuacct", "unified". */
  name: string;
  version: 1 | 2;
  /** For v1, the fsconfig options naming the controllers, e.g. "cpu,cpuacct" or "name=systemd". */
  options: string;
}

export interface HostView {
  /** What a host path is, following symlinks; null when it does not exist. */
  kindOf(hostPath: string): 'dir' | 'file' | null;
  /** The host's cgroup hierarchies mounted under /sys/fs/cgroup. */
  cgroupHierarchies(): CgroupHierarchy[];
  /** Is the namespace at `nsPath` the one tsrun itself runs in? (absent: never) */
  isHostNamespace?(nsPath: string, type: NamespaceType): boolean;
  /** Mount points of the full procfs and sysfs mounts our mount namespace has, deepest first (absent: none). */
  fullPseudoFsMounts?(): string[];
  /** Does tsrun itself run in a user namespace other than the host's (host.ts)?  (absent: no) */
  inUserNamespace?(): boolean;
}

export interface PlanContext {
  /** Absolute bundle directory; relative paths in the config are resolved against it. */
  bundle: string;
  /**
   * The rootfs as bundle preparation resolved it (resolveRootfs); absent:
   * resolved here.  madeAtCreate: create makes it (--image), so it need
   * not exist yet.
   */
  rootfs?: { path: string; madeAtCreate: boolean };
  noPivot: boolean;
  /** A --console-socket was given. */
  consoleSocket: boolean;
  /** What the container's cgroups offer the init (placement.ts decides how it gets there); absent: none. */
  cgroupTargets?: CgroupTargets;
  /**
   * The cgroup directory the init is in, in each host hierarchy, keyed by mount point: the container's own
   * (the cgroup manager's paths), or, for a user's container without one there, its caller's.
   */
  cgroupDirs?: Record<string, string>;
  /** Name of the session keyring to create ("_ses.<id>", as runc names it); none with --no-new-keyring. */
  sessionKeyring?: string;
  host: HostView;
  /** linux.seccomp, compiled (src/lib/seccomp.ts). */
  seccomp?: LoadableSeccomp;
  /** The rootfs is an image's overlay (attached only inside the container's mount namespace). */
  imageRootfs?: boolean;
  /**
   * tsrun runs as a user other than root: it has no privilege in the host's
   * user namespace, only in the container's (which it owns).
   */
  unprivileged?: boolean;
}

export interface CreatePlan {
  ops: PlanOp[];
  rootfs: string;
  /** Namespaces the container creates, for state and for the parent's uid/gid map writing. */
  newNamespaces: Set<NamespaceType>;
  /** No mount namespace of its own: its mounts are made in the host's, under the rootfs, and delete detaches them. */
  hostMounts: boolean;
}

/** root.path, resolved against the bundle: the one place the rule is written. */
export function resolveRootfs(config: Config, bundle: string): string {
  return path.resolve(bundle, config.root?.path ?? 'rootfs');
}

/** Strip the leading "/" and normalise, for resolution under the rootfs. */
export function containerRelative(p: string): string {
  return path.posix
    .normalize('/' + p)
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');
}

function attrsOf(flags: number): number {
  let attrs = 0;
  if (flags & MS.RDONLY) attrs |= MOUNT_ATTR.RDONLY;
  if (flags & MS.NOSUID) attrs |= MOUNT_ATTR.NOSUID;
  if (flags & MS.NODEV) attrs |= MOUNT_ATTR.NODEV;
  if (flags & MS.NOEXEC) attrs |= MOUNT_ATTR.NOEXEC;
  if (flags & MS.NODIRATIME) attrs |= MOUNT_ATTR.NODIRATIME;
  if (flags & MS.NOSYMFOLLOW) attrs |= MOUNT_ATTR.NOSYMFOLLOW;
  if (flags & MS.NOATIME) attrs |= MOUNT_ATTR.NOATIME;
  else if (flags & MS.STRICTATIME) attrs |= MOUNT_ATTR.STRICTATIME;
  return attrs;
}

/** Superblock flags have no mount attribute; fsconfig takes them by name. */
function superblockOptions(flags: number, clearFlags: number): string[] {
  const out: string[] = [];
  if (flags & MS.SYNCHRONOUS) out.push('sync');
  if (flags & MS.DIRSYNC) out.push('dirsync');
  if (flags & MS.LAZYTIME) out.push('lazytime');
  if (flags & MS.MANDLOCK) out.push('mand');
  if (clearFlags & MS.LAZYTIME) out.push('nolazytime');
  return out;
}

interface Namespaces {
  created: Set<NamespaceType>;
  joined: Map<NamespaceType, string>;
}

function namespacesOf(config: Config): Namespaces {
  const created = new Set<NamespaceType>();
  const joined = new Map<NamespaceType, string>();
  for (const ns of config.linux?.namespaces ?? []) {
    if (ns.path) joined.set(ns.type, ns.path);
    else created.add(ns.type);
  }
  return { created, joined };
}

function compileNamespaces(
  config: Config,
  ns: Namespaces,
  ops: PlanOp[],
  cloneIntoCgroup = '',
  inMountNs: PlanOp[] = [],
): void {
  // A cgroup namespace is entered by the init itself once it is in its cgroup (lateCgroupNs below).
  const cgroupNsJoin = lateCgroupNamespace(ns.joined.get('cgroup'), cloneIntoCgroup);
  for (const type of JOIN_ORDER) {
    const nsPath = ns.joined.get(type);
    if (nsPath && !(cgroupNsJoin && type === 'cgroup'))
      ops.push(op(Op.SETNS, { nstype: CLONE_FLAGS[type], path: nsPath }));
  }
  if (ns.created.has('user')) ops.push(op(Op.UNSHARE_USER), op(Op.BECOME_ROOT));
  else if (ns.joined.has('user')) ops.push(op(Op.BECOME_ROOT));

  // Cloned into its cgroup, the init unshares its cgroup namespace itself,
  // so the namespace is rooted at the container's cgroup, not the helper's.
  const lateCgroupNs = !!cloneIntoCgroup && ns.created.has('cgroup');
  let flags = 0;
  for (const type of ns.created)
    if (type !== 'user' && !(lateCgroupNs && type === 'cgroup')) flags |= CLONE_FLAGS[type];
  if (flags) ops.push(op(Op.UNSHARE, { flags: BigInt(flags) }));
  // The namespaces are the container's now; the init is not yet cloned.
  ops.push(...inMountNs);

  const offsets = config.linux?.timeOffsets;
  if (offsets) {
    const lines = (['monotonic', 'boottime'] as const)
      .filter((clock) => offsets[clock])
      .map((clock) => `${clock} ${offsets[clock]!.secs ?? 0} ${offsets[clock]!.nanosecs ?? 0}\n`);
    if (lines.length) ops.push(op(Op.TIMENS_OFFSETS, { content: lines.join('') }));
  }
  ops.push(op(Op.CLONE_INIT, { cgroupDir: cloneIntoCgroup }));
  if (lateCgroupNs) ops.push(op(Op.UNSHARE, { flags: BigInt(CLONE_FLAGS.cgroup) }));
  if (cgroupNsJoin) ops.push(cgroupNsJoin);
}

/**
 * The SETNS of a cgroup namespace that must come after CLONE_INIT, or
 * undefined when it can come with the others.  Under cgroup2's nsdelegate
 * (every systemd host mounts it so) a process may move into a cgroup only
 * when both its own cgroup and the target are inside its cgroup
 * namespace: a helper that joined the container's namespace first, from
 * outside the container's cgroup, would have its clone into that cgroup
 * refused (ENOENT).  So the process cloned into the cgroup joins the
 * namespace itself (runc avoids the refusal another way: its parent, in
 * the host's cgroup namespace, moves the process).
 */
function lateCgroupNamespace(nsPath: string | undefined, cloneIntoCgroup: string): PlanOp | undefined {
  return nsPath && cloneIntoCgroup ? op(Op.SETNS, { nstype: CLONE_FLAGS.cgroup, path: nsPath }) : undefined;
}

/** A bundle-relative source becomes absolute, like runc. */
function hostSource(source: string, bundle: string): string {
  return path.isAbsolute(source) ? source : path.join(bundle, source);
}

const formatMap = (maps: IDMapping[]): string => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');

/** Where mounts go, and the host-side preparations some of them need. */
interface MountSink {
  ops: PlanOp[];
  /** Ops that must run in the host's user namespace, before any namespace changes. */
  prepare: PlanOp[];
  /** A read-only /dev: mounted writable, made read-only once its devices, links and mounts are in (runc's order). */
  devReadonly?: boolean;
}

function compileMount(
  config: Config,
  m: Mount,
  index: number,
  ctx: PlanContext,
  ns: Namespaces,
  sink: MountSink,
): void {
  const ops = sink.ops;
  const field = `mounts[${index}]`;
  const opts = parseMountOptions(m.options ?? [], `${field}.options`);
  const dest = containerRelative(m.destination);
  if (dest === '') throw new ConfigError(`${field}.destination`, `cannot mount over the container's root`);

  const isBind = opts.bind || m.type === 'bind';
  let type = m.type ?? '';
  let source = m.source ?? '';
  let recursiveBind = opts.recursiveBind;
  // sysfs belongs to the network namespace's owner: without a network
  // namespace of its own, a user-namespaced container binds the host's /sys.
  if (
    !isBind &&
    type === 'sysfs' &&
    ns.created.has('user') &&
    !ns.created.has('network') &&
    !ns.joined.has('network')
  ) {
    type = 'bind';
    source = '/sys';
    recursiveBind = true;
  }
  const bind = isBind || type === 'bind';

  if (bind) {
    if (!source) throw new ConfigError(`${field}.source`, `a bind mount needs a source`);
    const hostPath = hostSource(source, ctx.bundle);
    const kind = ctx.host.kindOf(hostPath);
    if (!kind) throw new ConfigError(`${field}.source`, `${hostPath}: no such file or directory`);
    const atimeChange = (opts.flags & (MS.NOATIME | MS.STRICTATIME | MS.RELATIME)) !== 0;
    const attrSet = attrsOf(opts.flags);
    const attrClr = attrsOf(opts.clearFlags) | (atimeChange ? MOUNT_ATTR._ATIME : 0);
    // In a user namespace the container's root may not reach the source (a
    // 0700 directory on the way): it is taken by the helper's mount-source
    // server, in the host's user namespace but from inside the container's
    // mount namespace (where the kernel has locked the host's mounts), and
    // attached later, as idmapped ones are.
    const inUserns = ns.created.has('user') || ns.joined.has('user');
    if (opts.idmap || inUserns) {
      let uidMap = '';
      let gidMap = '';
      if (opts.idmap) {
        // The mount's own mappings, else the container's (runtime-spec allows either).
        const ownNs = ns.created.has('user');
        const uid = m.uidMappings ?? (ownNs ? config.linux?.uidMappings : undefined);
        const gid = m.gidMappings ?? (ownNs ? config.linux?.gidMappings : undefined);
        if (!uid?.length || !gid?.length)
          throw new ConfigError(
            `${field}.options`,
            'idmap needs uidMappings and gidMappings on the mount, or a new user namespace whose mappings it can use',
          );
        uidMap = formatMap(uid);
        gidMap = formatMap(gid);
      }
      const slot = sink.prepare.length;
      sink.prepare.push(
        op(Op.IDMAP_PREPARE, {
          slot,
          source: hostPath,
          recursiveBind: recursiveBind ? 1 : 0,
          uidMap,
          gidMap,
          attrSet,
          attrClr,
          recAttrSet: opts.recursiveAttrSet,
          recAttrClr: opts.recursiveAttrClr,
          idmapRecursive: opts.recursiveIdmap ? 1 : 0,
        }),
      );
      ops.push(
        mountOp({
          kind: MountKind.PREPARED,
          create: kind === 'dir' ? CreateKind.DIR : CreateKind.FILE,
          source: hostPath,
          dest,
          propagation: opts.propagation & ~MS.REC,
          propagationRecursive: opts.propagation & MS.REC ? 1 : 0,
          slot,
        }),
      );
      return;
    }
    ops.push(
      mountOp({
        kind: MountKind.BIND,
        recursiveBind: recursiveBind ? 1 : 0,
        create: kind === 'dir' ? CreateKind.DIR : CreateKind.FILE,
        source: hostPath,
        dest,
        attrSet,
        attrClr,
        recAttrSet: opts.recursiveAttrSet,
        recAttrClr: opts.recursiveAttrClr,
        propagation: opts.propagation & ~MS.REC,
        propagationRecursive: opts.propagation & MS.REC ? 1 : 0,
      }),
    );
    return;
  }

  if (opts.idmap) throw new ConfigError(`${field}.options`, 'idmap and ridmap apply to bind mounts only');
  if (!type) throw new ConfigError(`${field}.type`, `required for a non-bind mount`);
  if (type === 'cgroup' || type === 'cgroup2') {
    compileCgroupMount(field, dest, opts.flags, ctx, ns, ops);
    return;
  }
  if (opts.tmpcopyup && type !== 'tmpfs')
    throw new ConfigError(`${field}.options`, 'tmpcopyup applies to tmpfs mounts only');
  const data = [opts.data, ...superblockOptions(opts.flags, opts.clearFlags)].filter(Boolean).join(',');
  let attrSet = attrsOf(opts.flags);
  if (dest === 'dev' && attrSet & MOUNT_ATTR.RDONLY) {
    attrSet &= ~MOUNT_ATTR.RDONLY;
    sink.devReadonly = true;
  }
  ops.push(fsMount(source || type, dest, type, data, attrSet, { ...opts, copyUp: opts.tmpcopyup ? 1 : 0 }));
}

function fsMount(
  source: string,
  dest: string,
  fstype: string,
  data: string,
  attrSet: number,
  opts?: { recursiveAttrSet: number; recursiveAttrClr: number; propagation: number; copyUp?: number },
): PlanOp {
  return mountOp({
    kind: MountKind.FS,
    // runc's rule after CVE-2023-27561/28642: proc and sysfs go on a real
    // directory, never through a symlink, and the result is checked.
    create: fstype === 'proc' || fstype === 'sysfs' ? CreateKind.PLAIN_DIR : CreateKind.DIR,
    source,
    dest,
    fstype,
    data,
    attrSet,
    recAttrSet: opts?.recursiveAttrSet ?? 0,
    recAttrClr: opts?.recursiveAttrClr ?? 0,
    propagation: (opts?.propagation ?? 0) & ~MS.REC,
    propagationRecursive: (opts?.propagation ?? 0) & MS.REC ? 1 : 0,
    copyUp: opts?.copyUp ?? 0,
  });
}

/**
 * A "cgroup" mount shows the container its cgroups: cgroup2 where the host
 * is unified; otherwise a tmpfs holding one cgroup v1 mount per host
 * hierarchy (plus the hybrid "unified" cgroup2), as runc does.  Inside a
 * cgroup namespace each shows the container's own subtree.  Without one a
 * fresh v1 mount would show the host's whole tree (every other container's
 * cgroups, and limits not the container's own), so, as runc does, each
 * hierarchy is instead bound from the container's own directory in it.
 */
function compileCgroupMount(
  field: string,
  dest: string,
  flags: number,
  ctx: PlanContext,
  ns: Namespaces,
  ops: PlanOp[],
): void {
  const hierarchies = ctx.host.cgroupHierarchies();
  const attrs = attrsOf(flags);
  const v2Only = hierarchies.length > 0 && hierarchies.every((h) => h.version === 2 && h.name === '');
  if (hierarchies.length === 0) throw new ConfigError(`${field}`, `the host has no cgroup hierarchy mounted`);
  const ownNamespace = ns.created.has('cgroup') || ns.joined.has('cgroup');
  const own2 = ctx.cgroupDirs?.['/sys/fs/cgroup'];
  if (v2Only && ctx.unprivileged && !ownNamespace && own2) {
    // A user's namespace may not mount cgroup2 from the host's cgroup namespace: the init's own
    // cgroup is bound instead, as runc falls back to (mountCgroupV2).
    ops.push(mountOp({ kind: MountKind.BIND, create: CreateKind.DIR, source: own2, dest, attrSet: attrs }));
    return;
  }
  if (v2Only) {
    ops.push(fsMount('cgroup2', dest, 'cgroup2', '', attrs));
    return;
  }
  // The tmpfs stays writable until its mount points exist; ro is applied to each cgroup mount.
  ops.push(fsMount('tmpfs', dest, 'tmpfs', 'mode=755', attrs & ~MOUNT_ATTR.RDONLY));
  for (const h of hierarchies) {
    // A hybrid host's cgroup2 tree stays out, as runc leaves it out: the
    // container sees the v1 hierarchies.
    if (!h.name || h.version === 2) continue;
    const own = ownNamespace ? undefined : ctx.cgroupDirs?.[`/sys/fs/cgroup/${h.name}`];
    if (own)
      ops.push(
        mountOp({
          kind: MountKind.BIND,
          create: CreateKind.DIR,
          source: own,
          dest: `${dest}/${h.name}`,
          attrSet: attrs,
        }),
      );
    else ops.push(fsMount('cgroup', `${dest}/${h.name}`, 'cgroup', h.options, attrs));
    // Co-mounted controllers get one symlink each ("cpu" -> "cpu,cpuacct").
    if (h.name.includes(',')) {
      for (const controller of h.name.split(','))
        ops.push(op(Op.SYMLINK, { target: h.name, path: `${dest}/${controller}` }));
    }
  }
}

function deviceType(d: Device): number {
  return d.type === 'b' ? S_IFBLK : d.type === 'p' ? S_IFIFO : S_IFCHR;
}

/** A bind of the host's /dev at the container's /dev: used as it is, nothing made in it. */
function devIsHostBind(config: Config): boolean {
  return (config.mounts ?? []).some(
    (m) =>
      containerRelative(m.destination) === 'dev' &&
      (m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind')),
  );
}

function compileDevices(config: Config, ns: Namespaces, host: HostView, ops: PlanOp[]): void {
  if (devIsHostBind(config)) return; // the host's /dev is used as it is

  const byPath = new Map<string, Device>();
  for (const d of DEFAULT_DEVICES) byPath.set(d.path, d);
  (config.linux?.devices ?? []).forEach((d, i) => {
    if (containerRelative(d.path) === '')
      throw new ConfigError(`linux.devices[${i}].path`, `cannot be the container's root`);
    byPath.set(path.posix.normalize(d.path), d);
  });
  // In a user namespace no device can be made (mknod needs CAP_MKNOD over the host's): bound instead,
  // whether the config's namespace or the one tsrun runs in (rootless podman's), as runc does.
  const inUserNs = ns.created.has('user') || ns.joined.has('user') || host.inUserNamespace?.() === true;
  // runc replaces /dev/ptmx with a link to the container's own devpts
  // whatever the config lists there (setupPtmx): a ptmx node of the host's
  // numbers is dropped (podman --privileged lists every host device).
  for (const key of [...byPath.keys()]) if (containerRelative(key) === 'dev/ptmx') byPath.delete(key);
  for (const d of byPath.values()) {
    ops.push(
      op(Op.MKNOD, {
        path: containerRelative(d.path),
        type: deviceType(d),
        major: d.major ?? 0,
        minor: d.minor ?? 0,
        mode: d.fileMode ?? 0o666,
        uid: d.uid ?? 0,
        gid: d.gid ?? 0,
        bindFromHost: inUserNs && d.type !== 'p' ? 1 : 0,
      }),
    );
  }
  // runc links /dev/core to /proc/kcore too, where the host's kernel has one (CONFIG_PROC_KCORE:
  // Debian's 6.1 does, this machine's 6.18 not); the default maskedPaths cover /proc/kcore itself.
  const links = host.kindOf('/proc/kcore') ? [...DEFAULT_DEV_SYMLINKS, KCORE_LINK] : DEFAULT_DEV_SYMLINKS;
  for (const [target, link] of links) {
    if (!byPath.has(link)) ops.push(op(Op.SYMLINK, { target, path: containerRelative(link) }));
  }
}

const KCORE_LINK: [target: string, link: string] = ['/proc/kcore', '/dev/core'];

/**
 * A hook the helper runs in the container's namespaces, where and with
 * what runc gives it: createContainer in the rootfs (runc's init is there
 * then), with the process's env as configured; startContainer in the
 * process's cwd, with the env the process gets (HOME included).  A hook's
 * own env replaces the process's.
 */
function compileHook(stage: number, hook: Hook, where: { cwd: string; env?: string[] }): PlanOp {
  return op(Op.HOOK, {
    stage,
    path: hook.path,
    args: hook.args ?? [hook.path],
    env: hook.env ?? where.env ?? [],
    timeout: hook.timeout ?? 0,
    cwd: where.cwd,
    processEnv: hook.env || where.env ? 0 : 1,
  });
}

const PROPAGATION_FLAGS: Record<string, number> = {
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** What `create` runs in the container's init, from start to exec. */
export function compileCreatePlan(config: Config, ctx: PlanContext): CreatePlan {
  const process = config.process;
  if (!process) throw new ConfigError('process', 'required to create a container');
  if (!process.args || process.args.length === 0) throw new ConfigError('process.args', 'must not be empty');
  if (!config.root?.path) throw new ConfigError('root.path', 'required');
  const rootfs = ctx.rootfs?.path ?? resolveRootfs(config, ctx.bundle);
  if (!ctx.rootfs?.madeAtCreate && ctx.host.kindOf(rootfs) !== 'dir')
    throw new ConfigError(`root.path`, `${rootfs}: no such directory`);

  const ns = namespacesOf(config);
  const hasOwn = (t: NamespaceType): boolean => ns.created.has(t) || ns.joined.has(t);
  // No mount namespace of its own (none listed, or the path of ours): the
  // container shares the host's mounts, as runc allows.  Its mounts are
  // made there (and detached by delete), its root is a chroot, and what
  // only a mount namespace of its own can give is refused, as runc does.
  const mountNsPath = ns.joined.get('mount');
  const hostMounts =
    !ns.created.has('mount') && (mountNsPath === undefined || !!ctx.host.isHostNamespace?.(mountNsPath, 'mount'));
  // Moving an interface into the host's own network namespace would only
  // rename it, and set it down, on the host.
  const netPath = ns.joined.get('network');
  if (
    Object.keys(config.linux?.netDevices ?? {}).length &&
    netPath !== undefined &&
    ctx.host.isHostNamespace?.(netPath, 'network')
  )
    throw new ConfigError('linux.netDevices', "the network namespace joined is the host's: nothing can move into it");
  if (hostMounts) {
    for (const key of ['maskedPaths', 'readonlyPaths'] as const) {
      if (config.linux?.[key]?.length)
        throw new ConfigError(
          `linux.${key}`,
          'needs a mount namespace of the container (runc: unable to restrict sys entries without a private MNT namespace)',
        );
    }
    if (config.linux?.rootfsPropagation)
      throw new ConfigError(
        'linux.rootfsPropagation',
        "needs a mount namespace of the container (it would change the host's)",
      );
    if (ctx.imageRootfs)
      throw new ConfigError(
        'linux.namespaces',
        "an image's rootfs is mounted only in a mount namespace of the container's own: add one",
      );
  }
  if (config.hostname !== undefined && config.hostname !== '' && !hasOwn('uts'))
    throw new ConfigError('hostname', 'needs a UTS namespace of the container');
  if (config.domainname !== undefined && config.domainname !== '' && !hasOwn('uts'))
    throw new ConfigError('domainname', 'needs a UTS namespace of the container');
  if (config.linux?.timeOffsets && !ns.created.has('time'))
    throw new ConfigError('linux.timeOffsets', 'needs a new time namespace');
  if (ns.created.has('user') && !(config.linux?.uidMappings?.length && config.linux?.gidMappings?.length))
    throw new ConfigError('linux.uidMappings', 'a new user namespace needs uidMappings and gidMappings');
  if (process.terminal && !ctx.consoleSocket)
    throw new ConfigError('process.terminal', 'a terminal needs --console-socket');

  // Mounts compile first: binds of a user-namespaced container and
  // idmapped ones are prepared before the init exists.
  const mountSink: MountSink = { ops: [], prepare: [] };
  (config.mounts ?? []).forEach((m, i) => compileMount(config, m, i, ctx, ns, mountSink));

  const inUserns = ns.created.has('user') || ns.joined.has('user');
  const cgroups = cgroupOps(placeProcess(ctx.cgroupTargets, inUserns));
  // Without a user namespace a tree is prepared in the host's namespaces
  // (nothing is locked there).  With one, it must come from inside the
  // container's mount namespace, by a server forked before any namespace
  // changes (native/init.c explains the locks).
  const sourceServer = inUserns && mountSink.prepare.length > 0;
  const ops: PlanOp[] = [
    ...(sourceServer ? [op(Op.MOUNT_SOURCE_SERVER)] : []),
    ...cgroups.ops,
    ...compileProcessEarly(process),
    ...(sourceServer ? [] : mountSink.prepare),
  ];
  compileNamespaces(
    config,
    ns,
    ops,
    cgroups.cloneInto,
    sourceServer
      ? [
          // A user has no say over the container's mount namespace from the host's user namespace: the
          // server joins the container's first (it is still that user, and reaches what that user may).
          op(Op.MOUNT_SOURCES_JOIN, { userns: ctx.unprivileged ? 1 : 0 }),
          ...mountSink.prepare,
          op(Op.MOUNT_SOURCES_DONE),
        ]
      : [],
  );
  ops.push(op(Op.SETSID));
  if (ctx.sessionKeyring) ops.push(op(Op.SESSION_KEYRING, { name: ctx.sessionKeyring }));
  // A new network namespace starts with "lo" down: 127.0.0.1 would not
  // answer.  runc brings it up; one joined by path is someone else's.
  if (ns.created.has('network')) ops.push(op(Op.LOOPBACK_UP));
  if (config.hostname) ops.push(op(Op.SETHOSTNAME, { name: config.hostname }));
  if (config.domainname) ops.push(op(Op.SETDOMAINNAME, { name: config.domainname }));

  // Keep the host from seeing our mounts: "/" becomes rslave (or rprivate, if asked).
  const rootProp = config.linux?.rootfsPropagation;
  const parentProp = rootProp === 'private' || rootProp === 'rprivate' ? MS.PRIVATE | MS.REC : MS.SLAVE | MS.REC;
  // 0: the host's "/" is left alone (the rootfs bind is made private instead).
  ops.push(op(Op.ROOTFS_PREPARE, { rootfs, propagation: hostMounts ? 0 : parentProp }));
  ops.push(...mountSink.ops);
  compileDevices(config, ns, ctx.host, ops);

  const hooks = config.hooks ?? {};
  const parentHooks = (hooks.prestart?.length ?? 0) + (hooks.createRuntime?.length ?? 0);
  const containerHooks = (hooks.createContainer?.length ?? 0) + (hooks.startContainer?.length ?? 0);
  if (parentHooks || containerHooks) ops.push(op(Op.PARENT_HOOKS));
  for (const h of hooks.createContainer ?? [])
    ops.push(compileHook(HookStage.CREATE_CONTAINER, h, { cwd: rootfs, env: process.env ?? [] }));
  // runc makes a missing cwd (after the mounts and hooks, before the rootfs may turn read-only).
  if (containerRelative(process.cwd)) ops.push(op(Op.MKDIR, { path: containerRelative(process.cwd) }));

  // --no-pivot leaves the host's mounts beneath the rootfs: the full procfs
  // and sysfs ones must go, or a new user namespace inside could mount
  // procfs or sysfs without the container's masks (runc's msMoveRoot too).
  if (ctx.noPivot && !hostMounts) {
    const inRootfs = (p: string): boolean => p === rootfs || p.startsWith(rootfs.endsWith('/') ? rootfs : `${rootfs}/`);
    for (const p of ctx.host.fullPseudoFsMounts?.() ?? []) if (!inRootfs(p)) ops.push(op(Op.HIDE_HOST_FS, { path: p }));
  }
  ops.push(op(Op.PIVOT_ROOT, { mode: hostMounts ? PivotMode.CHROOT : ctx.noPivot ? PivotMode.MOVE : PivotMode.PIVOT }));
  if (rootProp) ops.push(op(Op.ROOT_PROPAGATION, { flags: PROPAGATION_FLAGS[rootProp] }));
  // runc's reOpenDevNull, where it made /dev: an engine's /dev/null stdio (conmon's, the shim's) is reopened from the
  // container's own /dev/null, so no fd of a host mount stays in the container (CRIU cannot dump one).
  if (!hostMounts && !devIsHostBind(config)) ops.push(op(Op.REOPEN_DEV_NULL));
  if (config.root.readonly) ops.push(op(Op.REMOUNT_ROOT_RO));
  ops.push(...compileSysctls(config, ns, ctx.host));
  // After the sysctls (which write under /proc/sys), as runc does.
  // Normalised without a trailing slash: "/a/" would make the helper's O_NOFOLLOW follow a final symlink.
  for (const p of config.linux?.readonlyPaths ?? [])
    ops.push(op(Op.READONLY_PATH, { path: `/${containerRelative(p)}` }));
  for (const p of config.linux?.maskedPaths ?? []) ops.push(op(Op.MASK_PATH, { path: `/${containerRelative(p)}` }));
  if (config.linux?.seccomp && !ctx.seccomp) throw new ConfigError('linux.seccomp', 'not compiled (internal error)');
  compileProcess(process, ops, {
    isInit: true,
    seccomp: ctx.seccomp,
    container: containerProcessAttrs(config),
    afterConsole: mountSink.devReadonly ? [op(Op.REMOUNT_RO, { path: '/dev' })] : [],
  });
  ops.push(op(Op.WAIT_START));
  for (const h of hooks.startContainer ?? []) ops.push(compileHook(HookStage.START_CONTAINER, h, { cwd: process.cwd }));
  ops.push(op(Op.EXEC));
  return { ops, rootfs, newNamespaces: ns.created, hostMounts };
}

/** IPC sysctls, namespaced by an IPC namespace (runc's list), plus fs.mqueue.*. */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/**
 * linux.sysctl, with runc's rule: only sysctls that belong to a namespace
 * the container does not share with the host may be set (anything else,
 * say kernel.core_pattern, would change the host).  Each becomes a path
 * under /proc/sys, written through the init's own procfs handle.
 */
function compileSysctls(config: Config, ns: Namespaces, host: HostView): PlanOp[] {
  const own = (type: NamespaceType): boolean => {
    if (ns.created.has(type)) return true;
    const joined = ns.joined.get(type);
    return joined !== undefined && !host.isHostNamespace?.(joined, type);
  };
  return Object.entries(config.linux?.sysctl ?? {}).map(([key, value]) => {
    const field = `linux.sysctl[${JSON.stringify(key)}]`;
    const rel = key.replace(/\./g, '/');
    if (!/^[\w\-@:+]+(\/[\w\-@:+]+)*$/.test(rel)) throw new ConfigError(field, 'not a sysctl name');
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) {
      if (!own('ipc')) throw new ConfigError(field, "not allowed in the host's IPC namespace");
    } else if (key.startsWith('net.') || key.startsWith('net/')) {
      if (!own('network')) throw new ConfigError(field, "not allowed in the host's network namespace");
    } else if (key === 'kernel.domainname' && own('uts')) {
      // the UTS namespace's own
    } else if (key === 'kernel.hostname') {
      throw new ConfigError(field, 'not allowed; use the hostname field');
    } else {
      throw new ConfigError(field, 'not in a namespace of the container: it would change the host');
    }
    return op(Op.SYSCTL, { key: rel, value });
  });
}

/** rlimit values above 2^53 arrive rounded; anything that large means "unlimited". */
function rlimitValue(v: number): bigint {
  return v >= 2 ** 63 ? 0xffff_ffff_ffff_ffffn : BigInt(Math.trunc(v));
}

/** How the process's own attributes are compiled: the init's or an exec's. */
export interface ProcessOptions {
  isInit: boolean;
  hostBounding?: bigint;
  /** The container's compiled linux.seccomp, if it has one. */
  seccomp?: LoadableSeccomp;
  /** What the container sets on each of its processes (linux.personality, linux.memoryPolicy). */
  container?: ContainerProcessAttrs;
  /** The init: what must wait for /dev/console (a read-only /dev). */
  afterConsole?: PlanOp[];
  /** exec: the final process.execCPUAffinity op (or the reset), once the process is in the cgroups. */
  finalAffinity?: PlanOp[];
}

/**
 * What must happen before any namespace is joined or created: the
 * oom_score_adj, written while we are still in the host's user namespace
 * (runc's nsexec does this first too; lowering it takes the host's
 * CAP_SYS_RESOURCE).  Forked processes inherit it.
 */
export function compileProcessEarly(process: Process): PlanOp[] {
  return process.oomScoreAdj === undefined ? [] : [op(Op.OOM_SCORE_ADJ, { value: process.oomScoreAdj >>> 0 })]; // read back as int32
}

/** process.rlimits as prlimit(2) takes them; a resource named twice is an error. */
export function processRlimits(
  process: Process,
): Array<{ resource: number; name: string; soft: bigint; hard: bigint; field: string }> {
  const seen = new Set<string>();
  return (process.rlimits ?? []).map((r, i) => {
    if (seen.has(r.type)) throw new ConfigError(`process.rlimits[${i}].type`, `duplicate rlimit ${r.type}`);
    seen.add(r.type);
    return {
      resource: RLIMIT_NUMBERS[r.type],
      name: r.type,
      soft: rlimitValue(r.soft),
      hard: rlimitValue(r.hard),
      field: `process.rlimits[${i}]`,
    };
  });
}

/**
 * The process's own attributes, in the order runc applies them:
 * no_new_privs, rlimits (set by the parent), the scheduler, I/O priority,
 * personality and memory policy (process-attrs.ts), seccomp before the
 * capabilities drop unless no_new_privs lets it wait, the bounding set,
 * the user switch, the other capability sets, the cwd, and seccomp as late
 * as possible when no_new_privs is on.  Later than runc there: with no
 * listener to hand over, the helper loads it in OP_EXEC right before
 * execve (after the exec fifo and startContainer hooks), so no syscall of
 * ours runs under the container's filter; with a listener, here, while the
 * parent can still take the listener fd.
 */
export function compileProcess(process: Process, ops: PlanOp[], opts: ProcessOptions = { isInit: true }): void {
  if (process.terminal) {
    ops.push(
      op(Op.CONSOLE, {
        rows: process.consoleSize?.height ?? 0,
        cols: process.consoleSize?.width ?? 0,
        bindDevConsole: opts.isInit ? 1 : 0,
      }),
    );
  }
  ops.push(...(opts.afterConsole ?? []));
  if (process.noNewPrivileges) ops.push(op(Op.NO_NEW_PRIVS));
  if (processRlimits(process).length) ops.push(op(Op.PARENT_RLIMITS));
  ops.push(...(opts.finalAffinity ?? []), ...processAttrOps(process, opts.container ?? {}));
  const seccomp = opts.seccomp
    ? op(Op.SECCOMP, {
        flags: opts.seccomp.flags,
        notify: opts.seccomp.notify ? 1 : 0,
        atExec: process.noNewPrivileges && !opts.seccomp.notify ? 1 : 0,
        program: opts.seccomp.program,
      })
    : undefined;
  if (seccomp && !process.noNewPrivileges) ops.push(seccomp);
  // runc's order (finalizeNamespace): the cwd first, while still root; the
  // bounding set before the user switch, the other sets after it; HOME
  // looked up with the user.
  const user = process.user ?? { uid: 0, gid: 0 };
  ops.push(op(Op.CHDIR, { cwd: process.cwd, stage: ChdirStage.BEFORE_USER }));
  const caps = process.capabilities
    ? capabilityMasks(process.capabilities, 'process.capabilities', opts.hostBounding)
    : undefined;
  if (caps) ops.push(op(Op.CAPS_BOUNDING, { keep: caps.bounding }));
  const env = process.env ?? [];
  const hasHome = env.some((e) => e.startsWith('HOME='));
  if (!hasHome) ops.push(op(Op.HOME, { uid: user.uid }));
  ops.push(
    op(Op.USER, {
      uid: user.uid,
      gid: user.gid,
      umask: user.umask ?? 0o022,
      groups: user.additionalGids ?? [],
    }),
  );
  ops.push(op(Op.CHDIR, { cwd: process.cwd, stage: ChdirStage.AFTER_USER }));
  if (caps) {
    ops.push(
      op(Op.CAPS_SET, {
        effective: caps.effective,
        permitted: caps.permitted,
        inheritable: caps.inheritable,
        ambient: caps.ambient,
      }),
    );
  }
  // No HOME in the config: "/" (runc's default) unless OP_HOME finds the user's in /etc/passwd.
  ops.push(
    op(Op.EXEC_PREPARE, { name: process.args![0], argv: process.args!, env: hasHome ? env : [...env, 'HOME=/'] }),
  );
  if (seccomp && process.noNewPrivileges) ops.push(seccomp);
}

/** The namespaces of a running container's init, as exec joins them. */
export interface InitNamespaces {
  /** Namespace type -> /proc/<init>/ns/<name> for each one the init does not share with us. */
  differing: Partial<Record<NamespaceType, string>>;
  /** Its root, where it is not ours though its mount namespace is (a chroot: no mount namespace of its own). */
  root?: string;
}

/** The placement's ops: the helper's own joins (OP_JOIN_CGROUP), and where the clone goes. */
function cgroupOps(placement: ProcessPlacement): { ops: PlanOp[]; cloneInto: string } {
  return {
    ops: placement.helperJoins.map(({ dir, file }) => op(Op.JOIN_CGROUP, { dir, file })),
    cloneInto: placement.cloneInto,
  };
}

/**
 * exec: join the init's namespaces, fork into its pid namespace, then the
 * same process set-up as the init (minus /dev/console), and exec.
 */
export interface ExecPlanOptions {
  /** What the container's cgroups offer the process; absent: the parent moves it (or there are none). */
  cgroupTargets?: CgroupTargets;
  seccomp?: LoadableSeccomp;
  container?: ContainerProcessAttrs;
}

export function compileExecPlan(process: Process, ns: InitNamespaces, opts: ExecPlanOptions = {}): PlanOp[] {
  if (!process.args || process.args.length === 0) throw new ConfigError('process.args', 'must not be empty');
  const { seccomp, container } = opts;
  const cgroups = cgroupOps(placeProcess(opts.cgroupTargets, !!ns.differing.user));
  const affinity = execAffinityOps(process);
  // The initial affinity comes first, so the helper runs on those CPUs before it joins any cgroup.
  const ops: PlanOp[] = [...affinity.initial, ...cgroups.ops, ...compileProcessEarly(process)];
  const cgroupNsJoin = lateCgroupNamespace(ns.differing.cgroup, cgroups.cloneInto);
  for (const type of JOIN_ORDER) {
    const nsPath = ns.differing[type];
    if (nsPath && !(cgroupNsJoin && type === 'cgroup'))
      ops.push(op(Op.SETNS, { nstype: CLONE_FLAGS[type], path: nsPath }));
  }
  if (ns.differing.user) ops.push(op(Op.BECOME_ROOT));
  if (ns.root) ops.push(op(Op.CHROOT, { path: ns.root }));
  ops.push(op(Op.CLONE_INIT, { cgroupDir: cgroups.cloneInto }));
  if (cgroupNsJoin) ops.push(cgroupNsJoin);
  if (process.terminal) ops.push(op(Op.SETSID));
  compileProcess(process, ops, { isInit: false, seccomp, container, finalAffinity: affinity.final });
  ops.push(op(Op.EXEC));
  return ops;
}

/**
 * A user's store namespace (image/user-store.ts): a new user namespace,
 * whose maps the parent writes, and a mount namespace of its own; then
 * `args` run as its root, with every capability it has there.
 */
export function compileStoreNamespacePlan(args: string[], env: string[], cwd: string): PlanOp[] {
  const ops: PlanOp[] = [
    op(Op.UNSHARE_USER),
    op(Op.BECOME_ROOT),
    op(Op.UNSHARE, { flags: BigInt(CLONE_FLAGS.mount) }),
    op(Op.CLONE_INIT, { cgroupDir: '' }),
  ];
  compileProcess({ args, env, cwd, user: { uid: 0, gid: 0 }, terminal: false }, ops, { isInit: false });
  ops.push(op(Op.EXEC));
  return ops;
}
