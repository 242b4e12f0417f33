/**
 * Picks the cgroup driver for this host and rebuilds a container's manager
 * from its saved state.
 */
import { type Config } from '../config';
import { TsrunError } from '../errors';
import { type CgroupManager, type CgroupState, detectLayout, readHierarchies } from './manager';
import { CgroupV1 } from './v1';
import { CgroupV2 } from './v2';

const UNIFIED_ROOT = '/sys/fs/cgroup';

function unifiedHierarchy(hierarchies = readHierarchies()) {
  const h = hierarchies.find((x) => x.version === 2 && x.mountPoint === UNIFIED_ROOT);
  if (!h) throw new TsrunError(`no cgroup2 hierarchy at ${UNIFIED_ROOT}`);
  return h;
}

/** Only a cgroup2 hierarchy here (no v1 controllers): what runc calls unified mode. */
export function isCgroup2Unified(): boolean {
  return detectLayout(readHierarchies()) === 'unified';
}

export function cgroupManagerFor(config: Config, id: string): CgroupManager {
  const hierarchies = readHierarchies();
  const cgroupsPath = config.linux?.cgroupsPath;
  if (detectLayout(hierarchies) === 'unified') return new CgroupV2(unifiedHierarchy(), cgroupsPath, id);
  return new CgroupV1(hierarchies, cgroupsPath, id);
}

/** `hierarchies`: the host's, when the caller has read them already (list reads them once for all). */
export function cgroupManagerFrom(state: CgroupState, hierarchies = readHierarchies()): CgroupManager {
  if (state.driver === 'v2') return new CgroupV2(unifiedHierarchy(hierarchies), undefined, '', state);
  return new CgroupV1(hierarchies, undefined, '', state);
}
