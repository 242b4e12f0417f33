/**
 * The container lifecycle (runtime.md): create, start, run and delete.
 * The verbs that only read state or touch cgroups (state, list, kill,
 * pause, resume, ps, update) are in control.ts.  The CLI verbs in src/cli/
 * are thin wrappers over these.
 *
 * create is the only verb that talks to tsrun-init; it follows the
 * protocol drawn in native/plan.h.  Whatever fails, create leaves nothing
 * behind: the init is killed and reaped, and the state directory removed.
 */
import fs = require('fs');
import path = require('path');
import { type Config, type IDMapping, parseConfig } from './config';
import { crashPoint, crashPointArmed } from './crash';
import { TsrunError, describeFsError } from './errors';
import { runHooks } from './hooks';
import { mountIdsAt, passwdName, topMountId } from './host';
import { debug, warn } from './log';
import { StdioPipes } from './stdio-pipes';
import { checkLsmRequests } from './lsm';
import { hostIdOf, setgroupsDenied, writeIdMaps } from './idmap';
import { JOIN_ORDER, NAMESPACES } from './namespaces';
import { INIT_HELPER, native } from './native';
import { killAndReap, launch, LaunchError } from './launch';
import { cgroupManagerFrom } from './cgroup';
import { RootlessCgroup } from './cgroup/rootless';
import { type CgroupManager } from './cgroup/manager';
import { type CgroupTargets } from './cgroup/placement';
import { resourcesAtCreate } from './cgroup/resources';
import { compileCreatePlan, containerRelative, type CreatePlan, processRlimits, resolveRootfs } from './plan';
import { type Platform, realPlatform } from './platform';
import { Rollback } from './rollback';
import { imageBundleConfig } from './image/bundle';
import type { BundleOverrides } from './image/convert';
import { checkImageStoreFor, imageOfConfig, openImageRootfs, releaseImageRootfs } from './image/rootfs';
import { ImageStore } from './image/store';
import { loadableSeccomp, normalizeSeccomp, type SeccompFilter, sendSeccompListener } from './seccomp';
import { encodePlan, Op } from './plan-format';
import { containerProcessAttrs } from './process-attrs';
import {
  type ContainerRecord,
  initDiedBeforeExec,
  type StateStore,
  type Status,
  processStartTime,
  validateId,
  waitingToStart,
} from './state';
import { sleepSync } from './sleep';
import { containerStatus } from './status';
import { stdioTargets, waitAttached, writePidFile } from './process-io';
import type { ConsoleProxy } from './terminal';

/** `--image REF`: the container's bundle is made from an image in a store, inside its state dir. */
export interface ImageRequest {
  ref: string;
  store: string;
  overrides: BundleOverrides;
}

export interface CreateOptions {
  id: string;
  bundle: string;
  image?: ImageRequest;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds: number;
  noPivot: boolean;
  noNewKeyring: boolean;
  /** --systemd-cgroup: systemd places the container's cgroup (a transient unit). */
  systemdCgroup?: boolean;
  /** cgroups as for an unprivileged user (--rootless; cgroup/rootless.ts). */
  rootlessCgroups?: boolean;
  /** The process's fds 0-2 when not ours (a foreground run's pipes). */
  stdio?: [number, number, number];
}

export function loadBundleConfig(bundle: string): Config {
  const configPath = path.join(bundle, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(configPath, 'utf8');
  } catch (err) {
    throw new TsrunError(describeFsError(err, configPath));
  }
  return parseConfig(text);
}

/** The bundle directory and its config: the given bundle, or for --image one made in the state dir. */
export interface PreparedBundle {
  bundle: string;
  config: Config;
  /** root.path, resolved once (plan.ts's resolveRootfs). */
  rootfs: string;
  /** The config was made from an image and is written at create, with an empty rootfs. */
  generated: boolean;
}

export function prepareBundle(store: StateStore, opts: CreateOptions): PreparedBundle {
  validateId(opts.id);
  if (!opts.image) {
    const bundle = path.resolve(opts.bundle);
    const config = loadBundleConfig(bundle);
    return { bundle, config, rootfs: resolveRootfs(config, bundle), generated: false };
  }
  const config = imageBundleConfig(new ImageStore(opts.image.store), opts.image.ref, opts.image.overrides);
  const bundle = path.join(path.resolve(store.dir(opts.id)), 'bundle');
  return { bundle, config, rootfs: resolveRootfs(config, bundle), generated: true };
}

/**
 * A --image bundle, written once the state dir is ours: config.json (0600:
 * its environment may hold secrets) and the empty rootfs, where the init
 * attaches the image's overlay in its own mount namespace.
 */
function writeGeneratedBundle(prepared: PreparedBundle, rootfs: string): void {
  fs.mkdirSync(prepared.bundle, { mode: 0o700 });
  fs.writeFileSync(path.join(prepared.bundle, 'config.json'), JSON.stringify(prepared.config, null, '\t') + '\n', {
    mode: 0o600,
  });
  fs.mkdirSync(rootfs, { recursive: true, mode: 0o700 });
}

/** The config field a failed step can be traced to ("mounts[3]: ", "process.oomScoreAdj: "), or nothing. */
function failedField(config: Config, step: string, where: string): string {
  // A step the helper names by the config's own field.
  if (step === 'oomScoreAdj') return 'process.oomScoreAdj: ';
  if (!where.startsWith('rootfs/')) return '';
  const dest = where.slice('rootfs/'.length);
  if (step === 'mount') {
    const index = (config.mounts ?? []).findIndex((m) => containerRelative(m.destination) === dest);
    return index >= 0 ? `mounts[${index}]: ` : '';
  }
  if (step === 'device') {
    const index = (config.linux?.devices ?? []).findIndex((d) => containerRelative(d.path) === dest);
    return index >= 0 ? `linux.devices[${index}]: ` : '';
  }
  return '';
}

/**
 * A container without a mount namespace of its own had its mounts made in
 * the host's, under its rootfs bind: detach that bind and all beneath it,
 * once no process of it is left (runc leaves them in the host for good).
 * Only tsrun's own bind is taken, found by its mount id.  When something
 * was mounted over it since (the caller, or another container on the same
 * rootfs), detaching ours would take that too: delete fails instead,
 * naming it, and works once it is gone.
 */
function releaseHostMounts(record: ContainerRecord): void {
  const at = record.hostMounts;
  if (!at) return;
  const detach = (): void => {
    try {
      native.detachMount(at);
    } catch (err) {
      throw new TsrunError(
        `${at}: detach the container's mounts: ${native.strerror((err as { errno: number }).errno).toLowerCase()}`,
      );
    }
  };
  if (record.hostMountId !== undefined) {
    if (!mountIdsAt(at).includes(record.hostMountId)) return; // already gone
    // What the path reaches is the top mount (mountinfo's order need not say so);
    // by the id never reused where there is one (a reused one could be another's).
    const ours =
      record.hostMountUniqueId !== undefined
        ? native.mountId(at, true) === record.hostMountUniqueId
        : native.mountId(at, false) === record.hostMountId;
    if (ours) return detach();
    const top = native.mountId(at, false);
    throw new TsrunError(
      `${at}: the container's mounts are covered by mount ${top}, mounted there after create; unmount it, then delete again`,
    );
  }
  // A create killed before it recorded its bind: at most that bind lies on
  // top of the mount found there before create.
  const top = topMountId(at);
  if (top === null || top === (record.hostMountsBase ?? null)) return;
  detach();
  const after = topMountId(at);
  if (after !== null && after !== (record.hostMountsBase ?? null))
    throw new TsrunError(
      `${at}: mount ${after} is still on top of the rootfs after detaching the container's; it was not made by this container`,
    );
}

/**
 * Fields tsrun cannot apply are refused, never ignored; where runc only
 * warns (personality flags: runtime-spec defines none), so does tsrun.
 */
function refuseUnapplicable(config: Config): void {
  if (config.linux?.intelRdt) {
    const why = fs.existsSync('/sys/fs/resctrl/schemata')
      ? 'tsrun cannot apply Intel RDT yet'
      : 'Intel RDT is not available on this host (resctrl is not mounted at /sys/fs/resctrl)';
    throw new TsrunError(`linux.intelRdt: ${why}`);
  }
  const flags = config.linux?.personality?.flags ?? [];
  if (flags.length)
    warn(`linux.personality.flags: ${flags.join(', ')} ignored: runtime-spec defines no personality flag`);
}

/** An interface of linux.netDevices, moved into the container: its name there, and whether it was up on the host. */
interface MovedNetDevice {
  hostName: string;
  name: string;
  /** Its index in the container: found by it, never by a name someone there could take. */
  index: number;
  wasUp: boolean;
}

/** The init's network namespace, held open once devices move into it: it outlives an init that dies failing. */
interface HeldNetns {
  fd: number;
  moved: MovedNetDevice[];
}

/** linux.netDevices, moved into the init's network namespace; each one moved is added to `held.moved` at once. */
function moveNetDevices(config: Config, pid: number, held: HeldNetns): void {
  const devices = Object.entries(config.linux?.netDevices ?? {});
  if (!devices.length) return;
  held.fd = fs.openSync(`/proc/${pid}/ns/net`, 'r');
  for (const [name, device] of devices) {
    try {
      const result = native.moveNetDevice(name, device.name ?? name, `/proc/self/fd/${held.fd}`, null, true, 0);
      held.moved.push({ hostName: name, ...result });
    } catch (err) {
      throw new TsrunError(`linux.netDevices[${JSON.stringify(name)}]: ${(err as Error).message}`);
    }
  }
}

/**
 * A create that fails gives back the interfaces it moved, as they were
 * (name, addresses, up or down), before its init is killed.  The spec
 * leaves giving back to the kernel when the namespace dies, for a
 * container that existed; this one never did, and a namespace joined by
 * path would otherwise keep the host's interface for good (and a new one
 * would destroy a virtual one).  runc gives nothing back.
 */
function returnNetDevices(held: HeldNetns): void {
  for (const device of held.moved.splice(0).reverse()) {
    try {
      native.moveNetDevice(
        device.name,
        device.hostName,
        '/proc/self/ns/net',
        `/proc/self/fd/${held.fd}`,
        device.wasUp,
        device.index,
      );
    } catch (err) {
      warn(`linux.netDevices[${JSON.stringify(device.hostName)}]: give it back to the host: ${(err as Error).message}`);
    }
  }
}

function releaseNetns(held: HeldNetns): void {
  if (held.fd >= 0) fs.closeSync(held.fd);
  held.fd = -1;
}

/**
 * A container of a user other than root, as runc checks one (its rootless
 * validation): only a user namespace of its own gives it a root (whose maps
 * config.ts requires, and tsrun or newuidmap/newgidmap write), every id a mount
 * option names must be mapped (the kernel refuses the mount otherwise),
 * and without setgroups no additional gid can be set.
 */
function checkUserConfig(config: Config, euid: number, egid: number): void {
  const linux = config.linux ?? {};
  const userns = (linux.namespaces ?? []).find((n) => n.type === 'user');
  if (!userns)
    throw new TsrunError(
      `linux.namespaces: this is uid ${euid}, not root: a container needs a user namespace of its own (type "user"), with uidMappings and gidMappings (tsrun spec --rootless writes one)`,
    );
  const mapped = (maps: IDMapping[] | undefined, id: number): boolean =>
    (maps ?? []).some((m) => id >= m.containerID && id < m.containerID + m.size);
  // Joined by path, the namespace's maps are not the config's (runc reads them there); the kernel then says.
  if (!userns.path)
    (config.mounts ?? []).forEach((m, i) => {
      for (const option of m.options ?? []) {
        const [, kind, id] = /^(uid|gid)=(\d+)$/.exec(option) ?? [];
        if (kind && !mapped(kind === 'uid' ? linux.uidMappings : linux.gidMappings, Number(id)))
          throw new TsrunError(
            `mounts[${i}].options: ${option}: ${kind} ${id} is not mapped in linux.${kind}Mappings (the kernel refuses such a mount in a user's namespace)`,
          );
      }
    });
  // An id-mapped mount needs root over the filesystem's own user namespace (the host's): runc refuses it too.
  (config.mounts ?? []).forEach((m, i) => {
    const maps = m.uidMappings ? 'uidMappings' : m.gidMappings ? 'gidMappings' : undefined;
    if (maps)
      throw new TsrunError(
        `mounts[${i}].${maps}: this is uid ${euid}, not root: an id-mapped mount needs root (runc refuses it for rootless containers too)`,
      );
  });
  if (!userns.path && setgroupsDenied(linux.gidMappings, euid, egid) && config.process?.user?.additionalGids?.length)
    throw new TsrunError(
      `process.user.additionalGids: a user's own gid map (one gid) denies setgroups in the container; map more gids (/etc/subgid, newgidmap) to set them`,
    );
}

/** Who creates the container, as runc's list names it: the host's /etc/passwd entry of our uid, else "#UID". */
function ownerName(): string {
  const uid = process.getuid?.() ?? 0;
  return passwdName(uid) ?? `#${uid}`;
}

/** What create decides before anything is made: stage 1 of create. */
export interface CompiledContainer {
  config: Config;
  bundle: string;
  image: ReturnType<typeof imageOfConfig>;
  cgroup: CgroupManager;
  /** What the cgroups offer the init; undefined: the parent moves the helper in (cgroup/placement.ts). */
  cgroupTargets: CgroupTargets | undefined;
  seccomp: SeccompFilter | undefined;
  rlimits: ReturnType<typeof processRlimits>;
  plan: CreatePlan;
  planBuffer: Buffer;
}

/**
 * Stage 1, compile: every check and decision, with nothing made yet (no
 * directory, cgroup, fd or process), so bad input leaves nothing behind.
 */
export function compileContainer(
  store: StateStore,
  opts: CreateOptions,
  prepared: PreparedBundle,
  platform: Platform,
): CompiledContainer {
  validateId(opts.id);
  const { bundle, config } = prepared;
  if (platform.euid() !== 0) checkUserConfig(config, platform.euid(), platform.egid());
  // runc's rule, for a user and for --rootless true alike: a host interface is moved with root in the host's
  // network namespace.
  if (Object.keys(config.linux?.netDevices ?? {}).length && (platform.euid() !== 0 || opts.rootlessCgroups))
    throw new TsrunError(
      `linux.netDevices: not for a rootless container (${platform.euid() !== 0 ? `this is uid ${platform.euid()}` : '--rootless true'}): moving a host interface needs root, as runc says`,
    );
  const image = imageOfConfig(config);
  if (image) checkImageStoreFor(config, image, platform.euid());
  checkLsmRequests({
    apparmor: { 'process.apparmorProfile': config.process?.apparmorProfile },
    selinux: { 'process.selinuxLabel': config.process?.selinuxLabel, 'linux.mountLabel': config.linux?.mountLabel },
  });
  refuseUnapplicable(config);
  // runc's rule: a console socket is for a terminal the runtime does not keep.
  if (opts.consoleSocket && !config.process?.terminal)
    throw new TsrunError('--console-socket: the process has no terminal (process.terminal is false)');
  const cgroup = platform.cgroups.forConfig(config, opts.id, {
    systemd: !!opts.systemdCgroup,
    rootless: !!opts.rootlessCgroups,
  });
  // A cgroup frozen before we came (cgroupsPath naming someone's paused
  // cgroup) would freeze the helper at its first op, and create would wait
  // for good: refused, as runc refuses it, before anything is made (the
  // cgroup is someone else's: failure must not remove it).
  if (cgroup.isFrozen()) throw new TsrunError("linux.cgroupsPath: the container's cgroup is frozen; thaw it first");
  const seccomp: SeccompFilter | undefined = config.linux?.seccomp ? normalizeSeccomp(config.linux.seccomp) : undefined;
  const cgroupTargets = cgroup.targets();
  if (
    cgroup instanceof RootlessCgroup &&
    cgroup.absent &&
    !config.linux?.namespaces?.some((n) => n.type === 'pid' && !n.path)
  )
    warn(
      "rootless: no cgroup and no pid namespace of the container's own: kill and delete reach its init alone, and what else it starts may outlive it (as with runc)",
    );
  const plan = compileCreatePlan(config, {
    seccomp: seccomp && loadableSeccomp(seccomp, store),
    cgroupTargets,
    // A user's container keeps its caller's cgroup where it has none of its own (cgroup/rootless.ts).
    cgroupDirs: cgroup instanceof RootlessCgroup ? cgroup.initDirs() : cgroup.describe().paths,
    bundle,
    rootfs: { path: prepared.rootfs, madeAtCreate: prepared.generated },
    noPivot: opts.noPivot,
    consoleSocket: !!opts.consoleSocket,
    // runc's name for it: the kernel refuses keyring names that start with ".", which an id may.
    sessionKeyring: opts.noNewKeyring ? undefined : `_ses.${opts.id}`,
    host: platform.host,
    imageRootfs: !!image,
    unprivileged: platform.euid() !== 0,
  });
  debug(`launch plan for ${opts.id}: ${plan.ops.map((o) => Op[o.op]).join(' ')}`);
  const rlimits = config.process ? processRlimits(config.process) : [];
  return { config, bundle, image, cgroup, cgroupTargets, seccomp, rlimits, plan, planBuffer: encodePlan(plan.ops) };
}

/** The record of a claimed container, before anything of it exists (pid 0). */
export function newRecord(opts: CreateOptions, c: CompiledContainer): ContainerRecord {
  const { config, plan } = c;
  // The real path: mountinfo shows it, not a symlink on the way (a bundle under /var/run, say).
  const hostRootfs = plan.hostMounts ? fs.realpathSync(plan.rootfs) : undefined;
  return {
    ociVersion: config.ociVersion,
    id: opts.id,
    pid: 0,
    initStartTime: '',
    bundle: c.bundle,
    rootfs: plan.rootfs,
    created: new Date().toISOString(),
    owner: ownerName(),
    annotations: config.annotations ?? {},
    hooks: {
      startContainer: config.hooks?.startContainer,
      poststart: config.hooks?.poststart,
      poststop: config.hooks?.poststop,
    },
    namespaces: {},
    cgroup: c.cgroup.describe(),
    process: config.process,
    seccomp: config.linux?.seccomp,
    processAttrs: containerProcessAttrs(config),
    hostMounts: hostRootfs,
    hostMountsBase: hostRootfs ? topMountId(hostRootfs) : undefined,
  };
}

/** The fds the launch hands the helper: the exec fifo, the engine's console, an image's rootfs. */
interface LaunchFds {
  fifoFd: number;
  consoleFd: number;
  rootfsFd: number;
}

/**
 * Stage 3, provision: the rootfs (an image's overlay, a generated bundle),
 * the exec fifo, the console and the cgroups, each registering its undo
 * (and the release of its fd) as it is made.
 */
function provision(
  store: StateStore,
  opts: CreateOptions,
  prepared: PreparedBundle,
  c: CompiledContainer,
  work: Rollback,
  platform: Platform,
): LaunchFds {
  const fds: LaunchFds = { fifoFd: -1, consoleFd: -1, rootfsFd: -1 };
  if (prepared.generated) writeGeneratedBundle(prepared, c.plan.rootfs); // in the state dir: removed with it
  if (c.image) {
    work.onFailure('release the image rootfs', () => releaseImageRootfs(store.dir(opts.id)));
    fds.rootfsFd = openImageRootfs(store.dir(opts.id), opts.id, c.image);
    // The init has its own copy, attached.
    work.always('close the image rootfs', () => platform.closeFd(fds.rootfsFd));
  }
  platform.crashPoint('create:rootfs');
  fds.fifoFd = platform.makeFifo(store.fifoPath(opts.id)); // in the state dir: removed with it
  work.always('close the exec fifo', () => platform.closeFd(fds.fifoFd));
  if (opts.consoleSocket) {
    fds.consoleFd = platform.connectConsole(opts.consoleSocket);
    work.always('close the console socket', () => platform.closeFd(fds.consoleFd));
  }
  work.onFailure('remove the cgroups', () => destroyCgroup(c.cgroup, platform));
  c.cgroup.create();
  platform.crashPoint('create:cgroups');
  return fds;
}

/**
 * Stage 4, launch: the helper runs the plan until the init is ready; the
 * hooks, the id maps and the net devices are the parent's part of it.
 * The init, once it exists, is killed on failure; the devices moved into
 * it are given back first.
 */
function launchInit(
  store: StateStore,
  opts: CreateOptions,
  c: CompiledContainer,
  record: ContainerRecord,
  fds: LaunchFds,
  work: Rollback,
  platform: Platform,
): number {
  const { config, bundle, seccomp } = c;
  // Held from the move until create ends, so a failure can give the devices back even once the init is gone.
  const netns: HeldNetns = { fd: -1, moved: [] };
  work.always('close the network namespace', () => releaseNetns(netns));
  const initPid = launch(
    {
      verb: 'create',
      plan: c.planBuffer,
      ...fds,
      preserveFds: opts.preserveFds,
      stdio: opts.stdio,
      cgroup: c.cgroup,
      // A manager that offers no target (systemd, before its unit exists) has the helper moved in first.
      parentMoves: c.cgroupTargets === undefined,
      resources: resourcesAtCreate(config.linux?.resources),
      rlimits: c.rlimits,
      onSeccompListener: (fd, pid) =>
        sendSeccompListener(seccomp!, fd, pid, store.ociState({ ...record, pid }, 'creating')),
      onInitPid: (pid) => moveNetDevices(config, pid, netns),
      onFailure: () => returnNetDevices(netns),
      onUsernsReady: (pid) => writeIdMaps(pid, config.linux?.uidMappings, config.linux?.gidMappings, platform),
      onRunHooks: (pid) => {
        platform.crashPoint('create:mounted'); // the init's mounts are made; it waits before pivot_root
        const state = JSON.stringify(store.ociState({ ...record, pid }, 'creating'));
        runHooks('prestart', config.hooks?.prestart, state, bundle);
        runHooks('createRuntime', config.hooks?.createRuntime, state, bundle);
        // Hooks inside the container see the pid as the container does (runtime.md).
        const inside = (status: Status): string =>
          JSON.stringify(store.ociState({ ...record, pid: pidInContainer(pid) }, status));
        return `${inside('creating')}\0${inside('created')}`;
      },
      describeFailure: (f) =>
        `${failedField(config, f.step, f.path)}${f.detail}: ${platform.strerror(f.errno).toLowerCase()}`,
    },
    platform,
  );
  // Launched, then a later step failed: the devices moved into it are given
  // back first, then it is killed (a failed launch does both itself).
  work.onFailure('give the net devices back, and kill the init', () => {
    returnNetDevices(netns);
    killAndReap(initPid, true, platform.processes);
  });
  platform.crashPoint('create:launched');
  return initPid;
}

/** Stage 5, commit: the init's pid and namespaces recorded, then the pid file engines wait for. */
function commitCreate(
  store: StateStore,
  opts: CreateOptions,
  record: ContainerRecord,
  initPid: number,
  platform: Platform,
): void {
  record.pid = initPid;
  // Its root is tsrun's bind of the rootfs: the one mount delete will detach.
  if (record.hostMounts) {
    record.hostMountId = native.mountId(`/proc/${initPid}/root`, false);
    record.hostMountUniqueId = native.mountId(`/proc/${initPid}/root`, true) ?? undefined;
  }
  record.initStartTime = platform.processStartTime(initPid) ?? '';
  // Still the helper, waiting: its stdio are the ones the program will get (checkpoint records them).
  record.stdio = stdioTargets(initPid);
  for (const type of JOIN_ORDER) {
    const file = NAMESPACES[type].file;
    record.namespaces[file] = `/proc/${initPid}/ns/${file}`;
  }
  store.save(record);
  platform.crashPoint('create:saved');
  if (opts.pidFile) writePidFile(opts.pidFile, initPid);
}

/**
 * create: set the container up and leave its init blocked on the exec fifo.
 * The init is a child of this process (CLONE_PARENT from the helper), so
 * `run` can wait for it; after `create` exits it passes to the engine's
 * subreaper, as runc's does.
 *
 * Five stages: compile (decide everything, make nothing), claim and record
 * (the state directory, then state.json naming the cgroups, so a tsrun
 * killed from there on leaves something delete --force can clean),
 * provision, launch, commit.  Each thing made registers its undo in a
 * Rollback, so a failure anywhere takes back exactly what was made, newest
 * first; a failed hook still ends the lifecycle with poststop.
 */
export function create(
  store: StateStore,
  opts: CreateOptions,
  prepared = prepareBundle(store, opts),
  platform: Platform = realPlatform,
): ContainerRecord {
  const compiled = compileContainer(store, opts, prepared, platform);
  const lockFd = store.claim(opts.id);
  platform.crashPoint('create:claimed');
  const work = new Rollback();
  work.always('unlock the container', () => store.unlock(lockFd));
  let record: ContainerRecord | undefined;
  try {
    work.onFailure('remove the state directory', () => store.remove(opts.id));
    record = newRecord(opts, compiled);
    const recorded = record;
    work.onFailure("detach the container's host mounts", () => releaseHostMounts(recorded));
    // Recorded before anything is made: a tsrun killed from here on leaves
    // a state.json (pid 0, so "stopped" once nobody holds the lock) that
    // names the cgroups, and delete --force finds them.
    store.save(record);
    platform.crashPoint('create:recorded');
    const fds = provision(store, opts, prepared, compiled, work, platform);
    const initPid = launchInit(store, opts, compiled, record, fds, work, platform);
    commitCreate(store, opts, record, initPid, platform);
    work.commit();
    return record;
  } catch (err) {
    work.unwind();
    // A failed create hook still ends the lifecycle with poststop (runtime.md step 12).
    if (record && err instanceof LaunchError && err.inHook)
      runPoststop(record, JSON.stringify(store.ociState({ ...record, pid: 0 }, 'stopped')), compiled.bundle);
    throw err;
  } finally {
    work.release();
  }
}

/** poststop hooks, in `cwd`: the bundle during create and run, the caller's directory for delete (as runc). */
export function runPoststop(record: ContainerRecord, state: string, cwd: string): void {
  for (const hook of record.hooks.poststop ?? []) {
    try {
      runHooks('poststop', [hook], state, cwd);
    } catch (err) {
      warn((err as Error).message);
    }
  }
}

/** The pid of a host process inside its own (innermost) pid namespace. */
function pidInContainer(pid: number): number {
  try {
    const line = fs
      .readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('NSpid:'));
    const ids = line?.split(/\s+/).slice(1).filter(Boolean);
    return ids?.length ? Number(ids[ids.length - 1]) : pid;
  } catch {
    return pid;
  }
}

/**
 * Wait until the released init has exec'd the container's program (its exe
 * is no longer our helper's memfd).  If it dies first, a startContainer hook
 * or the exec failed, and start says so.  `answer` is our read end of the
 * exec fifo, opened before the release: an init that fails after it leaves
 * a byte there (and one that died before reading ours leaves ours), which
 * tells even when the init was reaped (by an engine's subreaper) before we
 * looked; its name in /proc is the fallback.
 */
function waitForExec(record: ContainerRecord, answer: number): void {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (processStartTime(record.pid) !== record.initStartTime) {
      // Gone: failed in the helper, or its program ran and ended before we looked.
      if (fifoHoldsByte(answer) || initDiedBeforeExec(record.pid))
        throw new TsrunError('container process exited before its program started (see its stderr)');
      return;
    }
    if (!waitingToStart(record.pid)) return;
    if (Date.now() > deadline) throw new TsrunError('container process did not start its program in time');
    sleepSync(1);
  }
}

/** Whether a byte waits in the (non-blocking) fifo. */
function fifoHoldsByte(fd: number): boolean {
  try {
    return fs.readSync(fd, Buffer.alloc(1), 0, 1, null) === 1;
  } catch {
    return false; // EAGAIN: a writer is left, and nothing written
  }
}

/**
 * start: release the init waiting on the exec fifo, then run poststart hooks.
 * `lastAct`: nothing of this process is needed after the release (the start
 * verb), so without hooks to run it may become the helper that releases.
 */
export function start(store: StateStore, id: string, lastAct = false): void {
  let poststartFailed: { err: unknown; bundle: string } | undefined;
  const lockFd = store.lock(id);
  try {
    const record = store.load(id);
    const status = containerStatus(store, record);
    if (status !== 'created') throw new TsrunError(`cannot start a container in the ${status} state`);
    let fifo: number;
    try {
      fifo = fs.openSync(store.fifoPath(id), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch {
      throw new TsrunError('cannot start a container in the stopped state');
    }
    if (lastAct && !record.hooks.startContainer?.length && !record.hooks.poststart?.length && !crashPointArmed()) {
      // Nothing left to do after the release: the helper does it, so this process has ended when the program
      // starts (native/addon.c, execRelease, says why that matters to engines).
      fs.rmSync(store.fifoPath(id), { force: true });
      debug(`start ${id}: the helper releases the exec fifo`);
      try {
        native.execRelease(INIT_HELPER, fifo, lockFd);
      } catch (err) {
        debug(`start ${id}: ${(err as Error).message}; releasing it here`);
      }
      try {
        fs.writeSync(fifo, Buffer.from([0]));
      } finally {
        fs.closeSync(fifo);
      }
      return;
    }
    // Opened before the release, so the fifo keeps what a failing init writes (waitForExec).
    const answer = fs.openSync(store.fifoPath(id), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      try {
        fs.writeSync(fifo, Buffer.from([0]));
      } finally {
        fs.closeSync(fifo);
      }
      crashPoint('start:released');
      debug(`start ${id}: exec fifo released`);
      fs.rmSync(store.fifoPath(id), { force: true });
      // startContainer hooks run between here and the exec; poststart comes after the exec.
      if (record.hooks.startContainer?.length || record.hooks.poststart?.length) waitForExec(record, answer);
    } finally {
      fs.closeSync(answer);
    }
    try {
      runHooks('poststart', record.hooks.poststart, JSON.stringify(store.ociState(record, 'running')), record.bundle);
    } catch (err) {
      // runtime.md: a failed poststart hook stops the container, and the
      // lifecycle goes on to delete (poststop hooks included), as runc does.
      killAndReap(record.pid, false);
      poststartFailed = { err, bundle: record.bundle };
    }
  } finally {
    store.unlock(lockFd);
  }
  if (poststartFailed) {
    try {
      remove(store, id, true, poststartFailed.bundle);
    } catch (err) {
      warn(`delete after the failed poststart hook: ${(err as Error).message}`);
    }
    throw poststartFailed.err;
  }
}

/** Kill whatever is left in the cgroups, wait for it to go, then remove them. */
export function destroyCgroup(cgroup: CgroupManager, platform: Platform = realPlatform): void {
  for (let i = 0; i < 500 && cgroup.pids().length; i++) {
    cgroup.killAll(9);
    platform.sleep(10);
  }
  cgroup.destroy();
}

/**
 * delete: remove a stopped (or, like runc, a created) container; --force
 * kills a running one first.  With --force a missing container is not an
 * error, which is what containerd's shim relies on.
 */
export function remove(store: StateStore, id: string, force: boolean, hookCwd = process.cwd()): void {
  validateId(id);
  if (force) killEverything(store, id);
  let lockFd: number;
  try {
    lockFd = store.lock(id);
  } catch (err) {
    // A create killed before it recorded anything leaves a directory without
    // state.json; one still under way holds its lock and is left alone.
    store.removeIfAbandoned(id);
    if (force) return;
    throw err;
  }
  try {
    const record = store.load(id);
    const status = containerStatus(store, record);
    if ((status === 'running' || status === 'paused') && !force)
      throw new TsrunError(`cannot delete container "${id}" that is not stopped: ${status}`);
    const cgroup = cgroupManagerFrom(record.cgroup);
    if (status === 'paused') cgroup.thaw(); // a frozen task cannot die
    if (status !== 'stopped') killAndReap(record.pid, false);
    crashPoint('delete:killed');
    destroyCgroup(cgroup);
    crashPoint('delete:cgroups');
    releaseImageRootfs(store.dir(id)); // its processes are gone; the intent is in the state dir
    releaseHostMounts(record);
    store.remove(id);
    runPoststop(record, JSON.stringify(store.ociState(record, 'stopped')), hookCwd);
  } finally {
    store.unlock(lockFd);
  }
}

/**
 * delete --force, before it takes the container's lock: SIGKILL every
 * process in every one of the container's cgroups (a paused one thawed
 * after, as frozen tasks die only then).  Whoever holds the lock may be
 * waiting for one of them (an exec whose set-up the container stopped, a
 * start waiting for its program), and delete must never wait on anything
 * the container controls.  What is left, delete does under the lock.
 */
function killEverything(store: StateStore, id: string): void {
  let record: ContainerRecord;
  try {
    record = store.load(id);
  } catch {
    return; // nothing recorded: nothing runs
  }
  const cgroup = cgroupManagerFrom(record.cgroup);
  try {
    if (!cgroup.pids().length) return;
    cgroup.killAll(9);
    if (cgroup.isFrozen()) cgroup.thaw();
  } catch (err) {
    debug(`delete --force ${id}: ${(err as Error).message}; killing again under the lock`);
  }
}

export interface RunOptions extends CreateOptions {
  detach: boolean;
  keep: boolean;
}

/** run: create + start, then (attached) wait and return the exit status. */
export async function run(store: StateStore, opts: RunOptions): Promise<number> {
  const prepared = prepareBundle(store, opts);
  const config = prepared.config;
  if (opts.consoleSocket && !opts.detach)
    throw new TsrunError('--console-socket: needs --detach (in the foreground, run attaches the terminal itself)');
  const wantsTerminal = !opts.consoleSocket && config.process?.terminal === true;
  if (wantsTerminal && opts.detach)
    throw new TsrunError('process.terminal: a detached container needs --console-socket to get a terminal');
  // The console proxy (and Node's tty) loads only for a foreground run with a terminal.
  const terminal = wantsTerminal ? (require('./terminal') as typeof import('./terminal')) : undefined;
  const noTerminal = terminal?.hostTerminalProblem();
  if (noTerminal) throw new TsrunError(`process.terminal: ${noTerminal}`);
  if (!opts.detach) native.setSubreaper();
  const proxy = terminal ? new terminal.ConsoleProxy() : undefined;
  // In the foreground without a terminal, pipes of its own (stdio-pipes.ts).
  const pipes = !opts.detach && !proxy ? new StdioPipes() : undefined;
  try {
    // Root giving a new user namespace its stdio: to the ids its root has on the host, as runc does.
    const userns = config.linux?.namespaces?.find((n) => n.type === 'user');
    const rootUid = hostIdOf(config.linux?.uidMappings, 0);
    const rootGid = hostIdOf(config.linux?.gidMappings, 0);
    if (pipes && userns && !userns.path && process.geteuid?.() === 0 && rootUid !== undefined && rootGid !== undefined)
      pipes.giveTo(rootUid, rootGid);
    const withIo = {
      ...opts,
      ...(proxy ? { consoleSocket: proxy.socketPath } : {}),
      ...(pipes ? { stdio: pipes.child } : {}),
    };
    return await runWith(store, withIo, prepared, proxy, pipes);
  } finally {
    await proxy?.close();
    await pipes?.close();
  }
}

async function runWith(
  store: StateStore,
  opts: RunOptions,
  prepared: PreparedBundle,
  proxy: ConsoleProxy | undefined,
  pipes: StdioPipes | undefined,
): Promise<number> {
  pipes?.start();
  const record = create(store, opts, prepared);
  pipes?.launched();
  proxy?.attach();
  if (opts.detach) {
    try {
      start(store, opts.id);
    } catch (err) {
      remove(store, opts.id, true, record.bundle);
      throw err;
    }
    return 0;
  }
  const exited = waitAttached(record.pid, !!proxy);
  try {
    start(store, opts.id);
  } catch (err) {
    remove(store, opts.id, true, record.bundle);
    await exited.catch(() => undefined);
    throw err;
  }
  const code = await exited;
  await pipes?.close(); // its output is all out before run returns, as runc's
  if (!opts.keep) remove(store, opts.id, true, record.bundle);
  return code;
}
