/**
 * The cgroup layer's entry: a container's cgroups as a placement manager
 * (where: cgroupfs.ts) times a version writer (what: v1.ts, v2.ts), picked
 * for this host's layout, or rebuilt from what state.json recorded.
 */
import { type Config } from '../config';
import { TsrunError } from '../errors';
import { debug } from '../log';
import { native } from '../native';
import { sleepSync } from '../sleep';
import { callerCgroupDirs, CgroupfsV1Placement, CgroupfsV2Placement } from './cgroupfs';
import { defaultDeviceRules, replacedDefaultDevices } from './devices';
import { type CgroupFiles, hostFiles } from './files';
import type { SystemdUnit } from './systemd-units';
import {
  Cgroup,
  type CgroupManager,
  type CgroupState,
  detectLayout,
  type Hierarchy,
  readHierarchies,
  SYSTEMD_PROPERTY_ANNOTATION,
} from './manager';
import { hostMayUseCgroup, leftOutOf, type MayUseCgroup, RootlessCgroup, splitUsable } from './rootless';
import { V1Writer } from './v1';
import { V2Writer } from './v2';

const UNIFIED_ROOT = '/sys/fs/cgroup';

function unifiedHierarchy(hierarchies = readHierarchies()): Hierarchy {
  const h = hierarchies.find((x) => x.version === 2 && x.mountPoint === UNIFIED_ROOT);
  if (!h) throw new TsrunError(`no cgroup2 hierarchy at ${UNIFIED_ROOT}`);
  return h;
}

/** Only a cgroup2 hierarchy here (no v1 controllers): what runc calls unified mode. */
export function isCgroup2Unified(): boolean {
  return detectLayout(readHierarchies()) === 'unified';
}

/** The host's side of a cgroup: its files, how it waits, how device filters are loaded. */
export interface CgroupHost {
  files: CgroupFiles;
  sleep: (ms: number) => void;
  attachDeviceProgram: (dir: string, program: Buffer) => void;
  /** Whether this user may make or join a cgroup (rootless.ts). */
  mayUseCgroup: MayUseCgroup;
}

export const realCgroupHost: CgroupHost = {
  files: hostFiles,
  sleep: sleepSync,
  attachDeviceProgram: (dir, program) => native.attachDeviceProgram(dir, program),
  mayUseCgroup: hostMayUseCgroup,
};

function v1(placement: CgroupfsV1Placement, host: CgroupHost, replaced: readonly string[]): Cgroup {
  const writer = new V1Writer(placement.hierarchyDirs(), host.files, host.sleep, defaultDeviceRules(replaced));
  return new Cgroup(placement, writer, replaced);
}

function v2(placement: CgroupfsV2Placement, host: CgroupHost, replaced: readonly string[]): Cgroup {
  const writer = new V2Writer(
    placement.dir,
    host.files,
    host.sleep,
    host.attachDeviceProgram,
    defaultDeviceRules(replaced),
  );
  return new Cgroup(placement, writer, replaced);
}

/** How the container's cgroup is placed: by tsrun in cgroupfs (runc's default), or by systemd (--systemd-cgroup). */
export interface ManagerChoice {
  systemd: boolean;
  /**
   * cgroups as for an unprivileged user (--rootless): rootless.ts; with `systemd`, the caller's own systemd
   * manager places the container (on cgroup v2 only), as runc's rootless systemd manager.
   */
  rootless?: boolean;
}

export function cgroupManagerFor(
  config: Config,
  id: string,
  choice: ManagerChoice = { systemd: false },
  hierarchies = readHierarchies(),
  host = realCgroupHost,
): CgroupManager {
  const cgroupsPath = config.linux?.cgroupsPath;
  const replaced = replacedDefaultDevices(config.linux?.devices);
  if (choice.systemd) {
    if (!systemdModule().systemdBooted(host.files))
      throw new TsrunError('--systemd-cgroup: systemd is not the init of this host (no /run/systemd/system)');
    return systemdManager(config, id, hierarchies, host, replaced, undefined, !!choice.rootless);
  }
  const unitProperties = Object.keys(config.annotations ?? {}).filter((k) => k.startsWith(SYSTEMD_PROPERTY_ANNOTATION));
  if (unitProperties.length)
    debug(`${unitProperties.join(', ')}: ignored without --systemd-cgroup, as runc ignores them (there is no unit)`);
  const unified = detectLayout(hierarchies) === 'unified';
  const placement = unified
    ? new CgroupfsV2Placement(unifiedHierarchy(hierarchies), cgroupsPath, id, host.files, host.sleep)
    : new CgroupfsV1Placement(hierarchies, cgroupsPath, id, host.files, host.sleep);
  if (!choice.rootless)
    return placement instanceof CgroupfsV2Placement ? v2(placement, host, replaced) : v1(placement, host, replaced);
  // A user's: the hierarchies it may not use are left out, unless the config named the cgroup.
  const callerDirs = callerCgroupDirs(hierarchies);
  const { usable, leftOut } = splitUsable(placement.hierarchyDirs(), host.mayUseCgroup, callerDirs);
  if (leftOut.length && cgroupsPath)
    throw new TsrunError(
      `linux.cgroupsPath: this user may not make or join ${leftOut[0].dir}; delegate it to this user (chown it), or leave cgroupsPath out`,
    );
  if (!usable.length) return RootlessCgroup.none(unified ? 'v2' : 'v1', replaced, leftOut, () => callerDirs);
  const inner = unified
    ? v2(placement as CgroupfsV2Placement, host, replaced)
    : v1(
        new CgroupfsV1Placement(
          hierarchies.filter((h) => usable.some((u) => u.mountPoint === h.mountPoint)),
          cgroupsPath,
          id,
          host.files,
          host.sleep,
        ),
        host,
        replaced,
      );
  return new RootlessCgroup(inner.placement, inner.writer, replaced, leftOut, () => callerDirs, host.mayUseCgroup);
}

/** `hierarchies`: the host's, when the caller has read them already (list reads them once for all). */
/**
 * The systemd manager and its D-Bus client, loaded only where a container
 * uses them: state, list and kill, run on every engine call, load nothing
 * of them for a cgroupfs container (start-up: docs/performance.md).
 */
const systemdModule = (): typeof import('./systemd') => require('./systemd') as typeof import('./systemd');

/**
 * --systemd-cgroup: a transient unit of systemd's; its directories are
 * where cgroupfs would put a cgroupsPath of the unit's own path, with the
 * host's version writer over them.
 */
function systemdManager(
  config: Config | undefined,
  id: string,
  hierarchies: Hierarchy[],
  host: CgroupHost,
  replaced: readonly string[],
  existing: CgroupState | undefined,
  user: boolean,
): CgroupManager {
  const { Systemd, SystemdPlacement, annotationProperties, systemdUnitFor, userBusSocket } = systemdModule();
  const unified = detectLayout(hierarchies) === 'unified';
  // runc's rule: a user's manager is given a cgroup v2 subtree (Delegate=); on v1 it can place nothing.
  if (user && !unified)
    throw new TsrunError(
      "--systemd-cgroup: a user's systemd manager can place containers on cgroup v2 only; this host has cgroup v1 controllers (leave --systemd-cgroup out)",
    );
  const deviceDefaults = defaultDeviceRules(replaced);
  // A user's manager: found on its session bus when first asked (state and list never ask).
  const systemd = user ? new Systemd(() => userBusSocket(process.env), true) : new Systemd();
  let unit: SystemdUnit;
  if (user && !existing) {
    // Below the user manager's own cgroup (runc asks it for its ControlGroup), in user.slice by default.
    try {
      unit = systemdUnitFor(config?.linux?.cgroupsPath, id, {
        defaultSlice: 'user.slice',
        controlGroup: systemd.controlGroup(),
      });
    } finally {
      systemd.close();
    }
  } else unit = SystemdPlacement.unitOf(config?.linux?.cgroupsPath, id, existing);
  const resources = config?.linux?.resources;
  const annotated = annotationProperties(config?.annotations);
  // The unit's path in the cgroup2 tree, or (v1 and hybrid) in every hierarchy: systemd's and the ones tsrun
  // makes (SystemdPlacement.apply).
  const inner = unified
    ? new CgroupfsV2Placement(unifiedHierarchy(hierarchies), unit.cgroupPath, id, host.files, host.sleep, existing)
    : new CgroupfsV1Placement(hierarchies, unit.cgroupPath, id, host.files, host.sleep, existing);
  const version = inner instanceof CgroupfsV2Placement ? 2 : 1;
  const placement = new SystemdPlacement(
    inner,
    unit,
    version,
    id,
    resources,
    deviceDefaults,
    systemd,
    !!existing,
    annotated,
  );
  const writer =
    inner instanceof CgroupfsV2Placement
      ? new V2Writer(inner.dir, host.files, host.sleep, host.attachDeviceProgram, deviceDefaults)
      : new V1Writer(inner.hierarchyDirs(), host.files, host.sleep, deviceDefaults);
  // A user's unit is a cgroup delegated to it: what it may not do there (a device filter, an exec moved in
  // from outside the user's subtree) is forgiven as in a cgroup an administrator delegated (rootless.ts).
  if (user)
    return new RootlessCgroup(
      placement,
      writer,
      replaced,
      [],
      () => callerCgroupDirs(hierarchies),
      host.mayUseCgroup,
      !!existing,
    );
  return new Cgroup(placement, writer, replaced);
}

export function cgroupManagerFrom(
  state: CgroupState,
  hierarchies = readHierarchies(),
  host = realCgroupHost,
): CgroupManager {
  const replaced = state.replacedDefaultDevices ?? [];
  if (state.manager === 'systemd')
    return systemdManager(undefined, '', hierarchies, host, replaced, state, !!state.userManager);
  const leftOut = state.rootless ? leftOutOf(hierarchies, state.paths) : [];
  const callerDirs = () => callerCgroupDirs(hierarchies);
  if (state.rootless && !Object.keys(state.paths).length)
    return RootlessCgroup.none(state.driver, replaced, leftOut, callerDirs);
  const inner =
    state.driver === 'v2'
      ? v2(
          new CgroupfsV2Placement(unifiedHierarchy(hierarchies), undefined, '', host.files, host.sleep, state),
          host,
          replaced,
        )
      : v1(new CgroupfsV1Placement(hierarchies, undefined, '', host.files, host.sleep, state), host, replaced);
  return state.rootless
    ? new RootlessCgroup(inner.placement, inner.writer, replaced, leftOut, callerDirs, host.mayUseCgroup, true)
    : inner;
}
