/**
 * Picks the cgroup driver for this host and rebuilds a container's manager
 * from its saved state.
 */
import { Config } from '../config';
import { TsrunError } from '../errors';
import { CgroupManager, CgroupState, detectLayout, readHierarchies } from './manager';
import { CgroupV1 } from './v1';

/**
 * The manager for a new container, or null on a cgroup2-only host: its
 * driver comes next (with a VM to test it in); until then such a host runs
 * containers without cgroups, and refuses any resource limit.
 */
export function cgroupManagerFor(config: Config, id: string): CgroupManager | null {
  const hierarchies = readHierarchies();
  if (detectLayout(hierarchies) === 'unified') {
    const resources = config.linux?.resources;
    if (resources && Object.keys(resources).length)
      throw new TsrunError('linux.resources: cgroup v2-only hosts are not supported yet');
    return null;
  }
  return new CgroupV1(hierarchies, config.linux?.cgroupsPath, id);
}

export function cgroupManagerFrom(state: CgroupState | undefined): CgroupManager | null {
  if (!state) return null;
  return new CgroupV1(readHierarchies(), undefined, '', state);
}
