/**
 * checkpoint: a running container's processes written to an image
 * directory by CRIU (swrk.ts), as runc's checkpoint does it; the container
 * is then deleted unless --leave-running or --pre-dump.
 *
 * What CRIU must be told, because tsrun made it (runc tells it the same):
 *   - the mounts that come from the host (binds, the devices and, on cgroup
 *     v1, the cgroup binds) as external mounts, named by their place in the
 *     container, so a restore can give their sources again;
 *   - masked files (binds of /dev/null) likewise;
 *   - network and pid namespaces joined by path as external, by inode: the
 *     restore joins the namespace then at that path, CRIU does not make one;
 *   - what the init's stdio were (descriptors.json), so a restore can hand
 *     new pipes in place of the ones the caller held.
 * The container's network namespace is always dumped empty (runc's
 * default since 1.0: the engine that made its network makes it again).
 */
import fs = require('fs');
import path = require('path');
import { type Config, type Mount } from '../config';
import { remove, loadBundleConfig } from '../container';
import { describeFsError, TsrunError } from '../errors';
import { parseMountinfo } from '../mountinfo';
import { native } from '../native';
import { stdioTargets } from '../process-io';
import { type ContainerRecord, type StateStore } from '../state';
import { containerStatus } from '../status';
import { warn } from '../log';
import { CgroupMode, type CriuOpts, CriuRequestType, type ExtMount } from './proto';
import { checkCriuFeatures, checkCriuVersion, checkCriuWorks, criuBinary, criuRequest } from './swrk';

/** The file in the image directory that names the init's stdio at checkpoint (runc's name). */
export const DESCRIPTORS_FILE = 'descriptors.json';

const CLONE_NEWNET = 0x40000000;

/** Options both verbs share (runc's criuOptions). */
export interface CriuCommonOptions {
  imagePath: string;
  workPath?: string;
  tcpEstablished: boolean;
  extUnixSk: boolean;
  shellJob: boolean;
  fileLocks: boolean;
  manageCgroupsMode?: string;
  /** --empty-ns: namespaces made empty on restore; "network" is the only one runc takes (and always implied). */
  emptyNs: string[];
  autoDedup: boolean;
  lazyPages: boolean;
  /** --criu: CRIU's binary, else `criu` on PATH. */
  criu?: string;
}

export interface CheckpointOptions extends CriuCommonOptions {
  parentPath?: string;
  leaveRunning: boolean;
  tcpSkipInFlight: boolean;
  linkRemap: boolean;
  preDump: boolean;
  /** -1: none. */
  statusFd: number;
  pageServer?: string;
}

export function cgroupMode(value: string | undefined): CgroupMode {
  switch (value ?? '') {
    case '':
      return CgroupMode.DEFAULT;
    case 'soft':
      return CgroupMode.SOFT;
    case 'full':
      return CgroupMode.FULL;
    case 'strict':
      return CgroupMode.STRICT;
    case 'ignore':
      return CgroupMode.IGNORE;
    default:
      throw new TsrunError(`--manage-cgroups-mode: must be soft, full, strict or ignore, not ${JSON.stringify(value)}`);
  }
}

export function emptyNsMask(values: string[]): number {
  for (const ns of values)
    if (ns !== 'network')
      throw new TsrunError(`--empty-ns: namespace ${JSON.stringify(ns)} is not supported (only network)`);
  return CLONE_NEWNET;
}

/** A bind mount of the host's into the container (runc's Device "bind"). */
export function isBindMount(m: Mount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/** A destination as CRIU names a mount: absolute in the container, cleaned. */
export function mountKey(destination: string): string {
  return path.posix.normalize(`/${destination}`).replace(/(.)\/$/, '$1');
}

/**
 * The key CRIU knows an external mount by: where it is in the container,
 * the destination's symlinks followed beneath the rootfs as create followed
 * them (a bind at /var/run/x in an image whose /var/run links to /run is at
 * /run/x), as runc's securejoin does.
 */
export function externalMountKey(rootfs: string, destination: string): string {
  const key = mountKey(destination);
  return native.resolveInRoot(rootfs, key.slice(1)) ?? key;
}

/** org.criu.config: CRIU's configuration file for this container (runc's rule: absent means runc.conf). */
export function criuConfigFile(annotations: Record<string, string> | undefined): string | undefined {
  const value = annotations?.['org.criu.config'];
  if (value === undefined) return '/etc/criu/runc.conf';
  return value || undefined;
}

/**
 * A directory CRIU writes into, made 0700 if missing (it may exist: a
 * container is checkpointed again): its fd, and the first directory this
 * made (undefined if none), for takeBackMadeDirs.
 */
export function openCriuDir(dir: string, flag: string): { fd: number; made: string | undefined } {
  let made: string | undefined;
  try {
    made = fs.mkdirSync(dir, { mode: 0o700, recursive: true });
  } catch (err) {
    throw new TsrunError(describeFsError(err, `${flag} ${dir}`));
  }
  try {
    return { fd: fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY), made };
  } catch (err) {
    takeBackMadeDirs(dir, made);
    throw new TsrunError(describeFsError(err, `${flag} ${dir}`));
  }
}

/** The directories openCriuDir made, from dir up to made, while they are empty: what fails before CRIU leaves nothing. */
export function takeBackMadeDirs(dir: string, made: string | undefined): void {
  if (made === undefined) return;
  for (let d = dir; d.startsWith(made); d = path.dirname(d)) {
    try {
      fs.rmdirSync(d);
    } catch {
      return; // not empty (somebody else's now) or gone: left as it is
    }
    if (d === made) return;
  }
}

/** The namespace a config joins by path, of this type. */
function joinedPath(config: Config, type: string): string | undefined {
  return config.linux?.namespaces?.find((n) => n.type === type && n.path)?.path;
}

/** CRIU's key for an external namespace (runc's "extRootNetNS", "extRootPidNS"). */
export function externalNsKey(type: 'network' | 'pid'): string {
  return type === 'network' ? 'extRootNetNS' : 'extRootPidNS';
}

/** The host's mounts in the container: every bind, each device, and the masked files. */
function dumpExternalMounts(config: Config, record: ContainerRecord): ExtMount[] {
  const out: ExtMount[] = [];
  const add = (dest: string): void => {
    const key = externalMountKey(record.rootfs, dest);
    if (!out.some((m) => m.key === key)) out.push({ key, val: key });
  };
  for (const m of config.mounts ?? []) if (isBindMount(m)) add(m.destination);
  // cgroup v1 without a cgroup namespace: tsrun binds each of the container's hierarchies (as runc does).
  const cgroupMount = (config.mounts ?? []).find((m) => m.type === 'cgroup');
  if (cgroupMount && record.cgroup.driver === 'v1' && !config.linux?.namespaces?.some((n) => n.type === 'cgroup')) {
    const under = `${mountKey(cgroupMount.destination)}/`;
    for (const m of parseMountinfo(fs.readFileSync(`/proc/${record.pid}/mountinfo`, 'utf8')))
      if (m.fstype === 'cgroup' && m.mountPoint.startsWith(under)) add(m.mountPoint);
  }
  for (const masked of config.linux?.maskedPaths ?? []) {
    let st: fs.Stats;
    try {
      st = fs.statSync(`/proc/${record.pid}/root${mountKey(masked)}`);
    } catch {
      continue; // not there: nothing was masked
    }
    if (!st.isDirectory()) out.push({ key: mountKey(masked), val: '/dev/null' });
  }
  for (const d of config.linux?.devices ?? []) add(d.path);
  return out;
}

/** The container's freezer: CRIU freezes it instead of stopping each process with ptrace. */
function freezerOf(record: ContainerRecord): string | undefined {
  const entries = Object.entries(record.cgroup.paths);
  if (record.cgroup.driver === 'v2') return entries[0]?.[1];
  return entries.find(([mountPoint]) => path.basename(mountPoint).split(',').includes('freezer'))?.[1];
}

function parsePageServer(value: string): { address: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(value);
  const address = m?.[1].replace(/^\[(.*)\]$/, '$1');
  const port = Number(m?.[2]);
  if (!m || !address || !(port > 0 && port < 65536))
    throw new TsrunError('--page-server: use ADDRESS:PORT to name the page server');
  return { address, port };
}

/** --status-fd: an open fd CRIU's lazy-pages readiness can be written to (runc's checks). */
function checkStatusFd(fd: number): void {
  let info: string;
  try {
    info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    throw new TsrunError(`--status-fd ${fd}: not an open file descriptor`);
  }
  const flags = parseInt(/flags:\s*([0-7]+)/.exec(info)?.[1] ?? '0', 8);
  if ((flags & 3) === 0) throw new TsrunError(`--status-fd ${fd}: not open for writing`);
}

/** --parent-path: relative to the image path, and a directory there (runc's rules). */
function checkParentPath(imagePath: string, parentPath: string): void {
  const real = path.join(imagePath, parentPath);
  let st: fs.Stats;
  try {
    st = fs.statSync(real);
  } catch (err) {
    throw new TsrunError(`--parent-path: ${describeFsError(err, real)}`);
  }
  if (!st.isDirectory()) throw new TsrunError(`--parent-path: ${real} is not a directory`);
}

/** An image container's rootfs is an overlay the host never sees, released on delete: nothing CRIU could restore into. */
function refuseUncheckpointable(store: StateStore, record: ContainerRecord, id: string): void {
  if (record.bundle === path.join(path.resolve(store.dir(id)), 'bundle'))
    throw new TsrunError(
      `cannot checkpoint container "${id}": it runs from an image (--image), whose overlay rootfs is never on the host; make a bundle with "tsrun bundle" and run that`,
    );
  if (record.hostMounts)
    throw new TsrunError(
      `cannot checkpoint container "${id}": it has no mount namespace of its own (linux.namespaces lacks "mount")`,
    );
}

export function checkpoint(store: StateStore, id: string, opts: CheckpointOptions): void {
  if (process.geteuid?.() !== 0) warn('checkpoint is untested with rootless containers (as runc says)');
  const mode = cgroupMode(opts.manageCgroupsMode);
  const emptyNs = emptyNsMask(opts.emptyNs);
  const pageServer = opts.pageServer ? parsePageServer(opts.pageServer) : undefined;
  if (opts.parentPath && path.isAbsolute(opts.parentPath))
    throw new TsrunError('--parent-path: must be relative (to --image-path)');
  if (opts.statusFd !== -1) {
    if (!opts.lazyPages) throw new TsrunError('--status-fd: only with --lazy-pages');
    checkStatusFd(opts.statusFd);
  }
  const lockFd = store.lock(id);
  let destroy = false;
  try {
    const record = store.load(id);
    const status = containerStatus(store, record);
    if (status !== 'running' && status !== 'paused')
      throw new TsrunError(`cannot checkpoint a container in the ${status} state`);
    refuseUncheckpointable(store, record, id);
    const config = loadBundleConfig(record.bundle);
    const binary = criuBinary(opts.criu);
    checkCriuWorks(binary);
    const version = checkCriuVersion(binary);
    if (opts.preDump || opts.parentPath) checkCriuFeatures(binary, { memTrack: true });
    if (opts.lazyPages) checkCriuFeatures(binary, { lazyPages: true });
    const imagePath = path.resolve(opts.imagePath);
    // Before the image dir is made: a missing parent leaves nothing behind.
    if (opts.parentPath) checkParentPath(imagePath, opts.parentPath);
    const image = openCriuDir(imagePath, '--image-path');
    const imageFd = image.fd;
    let workFd = -1;
    try {
      try {
        workFd = opts.workPath ? openCriuDir(path.resolve(opts.workPath), '--work-path').fd : -1;
      } catch (err) {
        // Nothing was written yet: the image dir made just now goes too.
        takeBackMadeDirs(imagePath, image.made);
        throw err;
      }
      const external: string[] = [];
      for (const type of ['network', 'pid'] as const) {
        const joined = joinedPath(config, type);
        if (joined)
          external.push(`${type === 'network' ? 'net' : 'pid'}[${fs.statSync(joined).ino}]:${externalNsKey(type)}`);
      }
      const criuOpts: CriuOpts = {
        imagesDirFd: imageFd,
        workDirFd: workFd >= 0 ? workFd : undefined,
        logLevel: 4,
        logFile: 'dump.log',
        root: record.rootfs,
        manageCgroups: true,
        manageCgroupsMode: mode,
        notifyScripts: true,
        pid: record.pid,
        shellJob: opts.shellJob,
        leaveRunning: opts.leaveRunning,
        tcpEstablished: opts.tcpEstablished,
        tcpSkipInFlight: opts.tcpSkipInFlight,
        linkRemap: opts.linkRemap,
        extUnixSk: opts.extUnixSk,
        fileLocks: opts.fileLocks,
        emptyNs,
        orphanPtsMaster: true,
        autoDedup: opts.autoDedup,
        lazyPages: opts.lazyPages,
        configFile: criuConfigFile(record.annotations),
        external,
        freezeCgroup: freezerOf(record),
        parentImg: opts.parentPath,
        trackMem: opts.parentPath ? true : undefined,
        ps: pageServer,
        // CRIU before 3.15 tells lazy pages are ready only on this fd (later ones by the status-ready notification).
        statusFd: opts.statusFd !== -1 && version < 31500 ? opts.statusFd : undefined,
      };
      if (!opts.preDump) {
        criuOpts.extMnt = dumpExternalMounts(config, record);
        fs.writeFileSync(
          path.join(imagePath, DESCRIPTORS_FILE),
          JSON.stringify(record.stdio ?? stdioTargets(record.pid)),
          { mode: 0o600 },
        );
      }
      criuRequest(binary, {
        request: () => ({ type: opts.preDump ? CriuRequestType.PRE_DUMP : CriuRequestType.DUMP, opts: criuOpts }),
        logPath: path.join(opts.workPath ? path.resolve(opts.workPath) : imagePath, 'dump.log'),
        onNotify: (n) => {
          if (n.script !== 'status-ready' || opts.statusFd === -1) return;
          // The waiting caller's to read; a failure there is no reason to undo the dump (runc warns too).
          try {
            fs.writeSync(opts.statusFd, Buffer.from([0]));
            fs.closeSync(opts.statusFd);
          } catch (err) {
            warn(`--status-fd ${opts.statusFd}: ${(err as Error).message}`);
          }
        },
      });
      destroy = !opts.leaveRunning && !opts.preDump;
    } finally {
      fs.closeSync(imageFd);
      if (workFd >= 0) fs.closeSync(workFd);
    }
  } finally {
    store.unlock(lockFd);
  }
  // Its processes are gone (CRIU killed them after the dump): what is left is deleted as runc does (poststop too).
  // The checkpoint is made whatever happens here: a failure is a warning, as runc's.
  if (destroy)
    try {
      remove(store, id, true);
    } catch (err) {
      warn(`delete after the checkpoint: ${(err as Error).message}`);
    }
}
