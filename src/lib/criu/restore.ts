/**
 * restore: a container made again from a checkpoint (checkpoint.ts) by
 * CRIU, under the same or a new id, in this --root or another (the
 * migration case), as runc's restore does it.  It is create with CRIU in
 * the helper's place:
 *
 *   compile (every check of create, before anything is made) ->
 *   claim the id, record -> cgroups -> the rootfs bound at <state>/criu-root
 *   -> criu swrk: CRIU's own pid joins the cgroups (the tree it makes is
 *      born there), then RESTORE, answering its notifications:
 *        setup-namespaces   the prestart and createRuntime hooks, with the
 *                           restored init's pid (CRIU waits for them)
 *        orphan-pts-master  the new pty's master, to the console socket
 *        post-restore       the init recorded: pid, start time, namespaces
 *   -> pid file; in the foreground, wait for it and delete it after.
 *
 * The restored init is our child (CRIU restores it as its sibling,
 * rst_sibling), so a foreground restore waits for it as run waits.
 * Whatever fails, nothing is left: CRIU kills what it restored when a
 * notification is refused or it fails, and create's Rollback takes back
 * the rest.
 */
import fs = require('fs');
import path = require('path');
import {
  compileContainer,
  type CreateOptions,
  destroyCgroup,
  newRecord,
  prepareBundle,
  remove,
  runPoststop,
} from '../container';
import { type Config, type Mount } from '../config';
import { TsrunError, describeFsError } from '../errors';
import { runHooks } from '../hooks';
import { JOIN_ORDER, NAMESPACES } from '../namespaces';
import { native } from '../native';
import { realPlatform } from '../platform';
import { connectConsole, stdioTargets, waitAttached, writePidFile } from '../process-io';
import { Rollback } from '../rollback';
import { type ContainerRecord, CRIU_ROOT, processStartTime, type StateStore } from '../state';
import { StdioPipes } from '../stdio-pipes';
import type { ConsoleProxy } from '../terminal';
import { debug } from '../log';
import {
  cgroupMode,
  type CriuCommonOptions,
  criuConfigFile,
  DESCRIPTORS_FILE,
  emptyNsMask,
  externalMountKey,
  externalNsKey,
  isBindMount,
  mountKey,
} from './checkpoint';
import {
  type CgroupRoot,
  type CriuOpts,
  CriuRequestType,
  type ExtMount,
  type InheritFd,
  type JoinNamespace,
} from './proto';
import {
  checkCriuFeatures,
  checkCriuVersion,
  checkCriuWorks,
  criuBinary,
  criuRequest,
  type Notification,
} from './swrk';

export interface RestoreOptions extends CriuCommonOptions {
  id: string;
  bundle: string;
  detach: boolean;
  pidFile?: string;
  consoleSocket?: string;
  noSubreaper: boolean;
  noPivot: boolean;
  lsmProfile?: string;
  lsmMountContext?: string;
  systemdCgroup?: boolean;
  rootlessCgroups?: boolean;
}

/** CRIU's names for the namespaces it joins by path (join_ns). */
const JOIN_NS_NAMES: Record<string, string> = { ipc: 'ipc', uts: 'uts', mount: 'mnt', user: 'user', time: 'time' };

/** The checkpoint's descriptors.json: the init's stdio at checkpoint. */
function readDescriptors(imagePath: string): string[] {
  const file = path.join(imagePath, DESCRIPTORS_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TsrunError(`--image-path ${imagePath}: no checkpoint there (${describeFsError(err, DESCRIPTORS_FILE)})`);
  }
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list) || !list.every((e) => typeof e === 'string'))
    throw new TsrunError(`${file}: not a list of descriptors`);
  return list as string[];
}

/** CRIU's cgroups, as /proc shows them: where the restored tree goes is named relative to these. */
function cgroupRootsOf(pid: number): CgroupRoot[] {
  const out: CgroupRoot[] = [];
  for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') out.push({ path: m[3] });
    else if (m[2]) out.push({ ctrl: m[2], path: m[3] });
  }
  return out;
}

/**
 * runc's prepareCriuRestoreMounts: each mount point CRIU will mount on,
 * made when missing (a rootfs or a bind source copied elsewhere before the
 * container first ran lacks them).  Where the innermost mount enclosing a
 * mount point is a tmpfs of the container's, nothing is made (CRIU restores
 * its content); where it is a bind, the mount point is made in the bind's
 * source, where create made it through the bind; else in the rootfs.
 *
 * runc makes those inside binds by binding each source onto the rootfs, in
 * the host's mount namespace, for the time of the restore (runc#2748).
 * tsrun makes them in the source itself, beneath it by openat2
 * (RESOLVE_IN_ROOT): the same directory, with no mount in the host's
 * namespace to leave behind if tsrun is killed.  One difference: a symlink
 * inside a bind source resolves within the source here, where in the
 * container an absolute one resolves from the rootfs; CRIU then names the
 * mount point it cannot find.
 */
function makeMountPoints(config: Config, rootfs: string, bundle: string): void {
  const mounts = config.mounts ?? [];
  const sourceOf = (m: Mount): string => path.resolve(bundle, m.source ?? '');
  const isDir = (file: string): boolean => {
    try {
      return fs.statSync(file).isDirectory();
    } catch {
      return false; // a missing source: CRIU names it
    }
  };
  const enclosing = mounts
    .filter((m) => m.type === 'tmpfs' || (isBindMount(m) && m.source && isDir(sourceOf(m))))
    .map((m) => ({ key: mountKey(m.destination), source: m.type === 'tmpfs' ? undefined : sourceOf(m) }))
    .filter((e) => e.key !== '/');
  for (const m of mounts) {
    const key = mountKey(m.destination);
    if (m.type === 'cgroup' || key === '/') continue;
    const within = enclosing.filter((e) => key.startsWith(`${e.key}/`)).sort((a, b) => b.key.length - a.key.length)[0];
    if (within && !within.source) continue;
    const [root, relative] = within?.source
      ? [within.source, key.slice(within.key.length + 1)]
      : [rootfs, key.slice(1)];
    const isFile = isBindMount(m) && !!m.source && fs.existsSync(sourceOf(m)) && !isDir(sourceOf(m));
    try {
      native.makeMountPoint(root, relative, isFile);
    } catch (err) {
      const errno = (err as { errno?: number }).errno ?? 0;
      const where = within?.source ? `in the source of the bind at ${within.key}` : 'in the rootfs';
      throw new TsrunError(
        `mounts: ${m.destination}: cannot make its mount point ${where}: ${native.strerror(errno).toLowerCase()}`,
      );
    }
  }
}

interface RestoreIo {
  proxy?: ConsoleProxy;
  pipes?: StdioPipes;
}

/** What the container's stdio and terminal are, checked as run checks them (runc's restore does the same). */
function restoreIo(opts: RestoreOptions, terminal: boolean): RestoreIo {
  if (opts.consoleSocket && !opts.detach)
    throw new TsrunError('--console-socket: needs --detach (in the foreground, restore attaches the terminal itself)');
  if (opts.consoleSocket && !terminal)
    throw new TsrunError('--console-socket: the process has no terminal (process.terminal is false)');
  if (terminal && opts.detach && !opts.consoleSocket)
    throw new TsrunError('process.terminal: a detached container needs --console-socket to get a terminal');
  if (opts.detach) return {};
  if (terminal) {
    const t = require('../terminal') as typeof import('../terminal');
    const problem = t.hostTerminalProblem();
    if (problem) throw new TsrunError(`process.terminal: ${problem}`);
    return { proxy: new t.ConsoleProxy() };
  }
  return { pipes: new StdioPipes() };
}

export async function restore(store: StateStore, opts: RestoreOptions): Promise<number> {
  const createOpts: CreateOptions = {
    id: opts.id,
    bundle: opts.bundle,
    pidFile: opts.pidFile,
    consoleSocket: opts.consoleSocket,
    preserveFds: 0,
    noPivot: opts.noPivot,
    noNewKeyring: false,
    systemdCgroup: opts.systemdCgroup,
    rootlessCgroups: opts.rootlessCgroups,
  };
  const prepared = prepareBundle(store, createOpts);
  const mode = cgroupMode(opts.manageCgroupsMode);
  const emptyNs = emptyNsMask(opts.emptyNs);
  const terminal = prepared.config.process?.terminal === true;
  // Every check of create, with the console's own (a foreground terminal is tsrun's proxy).
  const compiled = compileContainer(
    store,
    { ...createOpts, consoleSocket: terminal ? (opts.consoleSocket ?? 'proxy') : undefined },
    prepared,
    realPlatform,
  );
  if (compiled.image)
    throw new TsrunError(
      'a bundle made from an image (tsrun bundle) cannot be restored: its rootfs is an overlay only the container mounts (checkpoint refuses such containers)',
    );
  if (compiled.plan.hostMounts)
    throw new TsrunError('linux.namespaces: restore needs a mount namespace of the container\'s own ("mount")');
  const imagePath = path.resolve(opts.imagePath);
  const descriptors = readDescriptors(imagePath);
  const binary = criuBinary(opts.criu);
  checkCriuWorks(binary);
  const version = checkCriuVersion(binary);
  if ((opts.lsmProfile || opts.lsmMountContext) && version < 31600)
    throw new TsrunError(`--${opts.lsmProfile ? 'lsm-profile' : 'lsm-mount-context'}: needs CRIU 3.16 or later`);
  if (opts.lazyPages) checkCriuFeatures(binary, { lazyPages: true });
  const io = restoreIo(opts, terminal);
  if (!opts.detach && !opts.noSubreaper) native.setSubreaper();
  try {
    io.pipes?.start();
    const record = restoreContainer(store, opts, compiled, prepared.rootfs, imagePath, descriptors, {
      mode,
      emptyNs,
      binary,
      io,
    });
    io.pipes?.launched();
    io.proxy?.attach();
    if (opts.detach) return 0;
    const code = await waitAttached(record.pid, !!io.proxy);
    await io.pipes?.close();
    remove(store, opts.id, true, record.bundle);
    return code;
  } finally {
    await io.proxy?.close();
    await io.pipes?.close();
  }
}

interface RestoreSettings {
  mode: number;
  emptyNs: number;
  binary: string;
  io: RestoreIo;
}

function restoreContainer(
  store: StateStore,
  opts: RestoreOptions,
  compiled: ReturnType<typeof compileContainer>,
  rootfs: string,
  imagePath: string,
  descriptors: string[],
  settings: RestoreSettings,
): ContainerRecord {
  const { config, cgroup } = compiled;
  const lockFd = store.claim(opts.id);
  const work = new Rollback();
  work.always('unlock the container', () => store.unlock(lockFd));
  const opened: number[] = [];
  work.always('close the files CRIU was given', () => opened.forEach((fd) => native.close(fd)));
  let record: ContainerRecord | undefined;
  let restored = 0;
  let hooksRan = false;
  try {
    work.onFailure('remove the state directory', () => store.remove(opts.id));
    record = newRecord({ ...opts, preserveFds: 0, noNewKeyring: false }, compiled);
    const recorded = record;
    store.save(record);
    work.onFailure('remove the cgroups', () => destroyCgroup(cgroup));
    cgroup.create();

    const imageFd = fs.openSync(imagePath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    opened.push(imageFd);
    let workFd: number | undefined;
    if (opts.workPath) {
      const { openCriuDir } = require('./checkpoint') as typeof import('./checkpoint');
      workFd = openCriuDir(path.resolve(opts.workPath), '--work-path').fd;
      opened.push(workFd);
    }

    makeMountPoints(config, rootfs, compiled.bundle);
    // CRIU's root: a mount point whose parent is not mounted over (runc's criu-root).
    const criuRoot = path.join(fs.realpathSync(store.dir(opts.id)), CRIU_ROOT);

    // Namespaces joined by path: network and pid are the checkpoint's externals, the others CRIU joins.
    const extra: number[] = [];
    const inheritFd: InheritFd[] = [];
    const joinNs: JoinNamespace[] = [];
    for (const ns of config.linux?.namespaces ?? []) {
      if (!ns.path) continue;
      if (ns.type === 'network' || ns.type === 'pid') {
        let fd: number;
        try {
          fd = fs.openSync(ns.path, 'r');
        } catch (err) {
          throw new TsrunError(`linux.namespaces: ${describeFsError(err, ns.path)}`);
        }
        opened.push(fd);
        inheritFd.push({ key: externalNsKey(ns.type), fd: 4 + extra.length });
        extra.push(fd);
      } else if (ns.type === 'cgroup') {
        throw new TsrunError('linux.namespaces: CRIU cannot restore into a cgroup namespace joined by path');
      } else {
        joinNs.push({ ns: JOIN_NS_NAMES[ns.type] ?? ns.type, nsFile: ns.path });
      }
    }
    // The checkpoint's stdio pipes are taken over by CRIU's own fds 0-2: the ones given below.
    descriptors.forEach((d, i) => {
      if (i < 3 && d.includes('pipe:')) inheritFd.push({ key: d, fd: i });
    });

    const extMnt: ExtMount[] = [];
    for (const m of config.mounts ?? [])
      if (isBindMount(m) && m.source)
        extMnt.push({ key: externalMountKey(rootfs, m.destination), val: path.resolve(compiled.bundle, m.source) });
    const cgroupMount = (config.mounts ?? []).find((m) => m.type === 'cgroup');
    if (cgroupMount && cgroup.describe().driver === 'v1' && !config.linux?.namespaces?.some((n) => n.type === 'cgroup'))
      for (const [mountPoint, dir] of Object.entries(cgroup.describe().paths))
        extMnt.push({ key: `${mountKey(cgroupMount.destination)}/${path.basename(mountPoint)}`, val: dir });
    if (config.linux?.maskedPaths?.length) extMnt.push({ key: '/dev/null', val: '/dev/null' });
    for (const d of config.linux?.devices ?? []) extMnt.push({ key: externalMountKey(rootfs, d.path), val: d.path });

    const stdio: [number, number, number] | null = settings.io.pipes
      ? settings.io.pipes.child
      : opts.detach && !settings.io.proxy
        ? [0, 1, 2]
        : null;

    const onNotify = (n: Notification): void => {
      switch (n.script) {
        case 'setup-namespaces': {
          hooksRan = true; // from here on a failure ends with poststop, as create's does
          const state = JSON.stringify(store.ociState({ ...recorded, pid: n.pid ?? 0 }, 'creating'));
          runHooks('prestart', config.hooks?.prestart, state, compiled.bundle);
          runHooks('createRuntime', config.hooks?.createRuntime, state, compiled.bundle);
          return;
        }
        case 'orphan-pts-master': {
          if (n.fd === undefined)
            throw new TsrunError('criu restore: the pty master did not come with its notification');
          const socketPath = opts.consoleSocket ?? settings.io.proxy?.socketPath;
          if (!socketPath) throw new TsrunError('process.terminal: the restored terminal has nowhere to go');
          const sock = connectConsole(socketPath);
          try {
            native.sendFd(sock, n.fd, Buffer.from('/dev/ptmx'));
          } finally {
            native.close(sock);
          }
          return;
        }
        case 'post-restore':
          restored = n.pid ?? 0;
          return;
        default:
          return;
      }
    };

    const criuOpts: CriuOpts = {
      imagesDirFd: imageFd,
      workDirFd: workFd,
      evasiveDevices: true,
      logLevel: 4,
      logFile: 'restore.log',
      rstSibling: true,
      root: criuRoot,
      manageCgroups: true,
      manageCgroupsMode: settings.mode,
      notifyScripts: true,
      shellJob: opts.shellJob,
      extUnixSk: opts.extUnixSk,
      tcpEstablished: opts.tcpEstablished,
      fileLocks: opts.fileLocks,
      emptyNs: settings.emptyNs,
      orphanPtsMaster: true,
      autoDedup: opts.autoDedup,
      lazyPages: opts.lazyPages,
      configFile: criuConfigFile(config.annotations),
      extMnt,
      inheritFd,
      joinNs,
      lsmProfile: opts.lsmProfile,
      lsmMountContext: opts.lsmMountContext,
    };
    // Bound only while CRIU runs, and gone before anything else is undone (the state directory holds it).
    fs.mkdirSync(criuRoot, { mode: 0o700 });
    let resp: ReturnType<typeof criuRequest>;
    try {
      native.bindMount(fs.realpathSync(rootfs), criuRoot);
      resp = criuRequest(settings.binary, {
        stdio,
        extra,
        logPath: path.join(opts.workPath ? path.resolve(opts.workPath) : imagePath, 'restore.log'),
        onSpawn: (criuPid) => {
          // Placed first, so every process CRIU makes is born in the container's cgroups with its limits.
          cgroup.apply(criuPid);
          cgroup.set(config.linux?.resources);
          recorded.stdio = stdioTargets(criuPid);
        },
        request: (criuPid) => ({
          type: CriuRequestType.RESTORE,
          opts: { ...criuOpts, cgRoot: cgroupRootsOf(criuPid) },
        }),
        onNotify,
      });
    } finally {
      native.detachMount(criuRoot);
      fs.rmdirSync(criuRoot);
    }
    const pid = resp.restorePid && resp.restorePid > 0 ? resp.restorePid : restored;
    if (!pid) throw new TsrunError('criu restore: no pid for the restored container');
    work.onFailure('kill the restored container', () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    record.pid = pid;
    record.initStartTime = processStartTime(pid) ?? '';
    record.created = new Date().toISOString();
    for (const type of JOIN_ORDER) {
      const file = NAMESPACES[type].file;
      record.namespaces[file] = `/proc/${pid}/ns/${file}`;
    }
    store.save(record);
    if (opts.pidFile) writePidFile(opts.pidFile, pid);
    debug(`restore ${opts.id}: pid ${pid}`);
    work.commit();
    return record;
  } catch (err) {
    work.unwind();
    if (record && hooksRan)
      runPoststop(record, JSON.stringify(store.ociState({ ...record, pid: 0 }, 'stopped')), compiled.bundle);
    throw err;
  } finally {
    work.release();
  }
}
