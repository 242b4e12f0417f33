/**
 * AppArmor and SELinux.  tsrun applies neither yet.  Like runc on a host
 * without AppArmor, a profile or label is then ignored (said under
 * --debug); on a host where the module is active, ignoring it would run
 * the container less confined than asked, so that is an error instead.
 */
import fs = require('fs');
import { TsrunError } from './errors';
import { debug } from './log';

function readFlag(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

export const hostLsm = {
  apparmor: (): boolean => readFlag('/sys/module/apparmor/parameters/enabled') === 'Y',
  /** selinuxfs is mounted only when SELinux is enabled (built-in but disabled: absent). */
  selinux: (): boolean => fs.existsSync('/sys/fs/selinux/enforce'),
};

/** Profiles and labels asked for: `field` -> value. */
export function checkLsmRequests(requests: {
  apparmor: Record<string, string | undefined>;
  selinux: Record<string, string | undefined>;
}): void {
  for (const [kind, active] of [
    ['apparmor', hostLsm.apparmor],
    ['selinux', hostLsm.selinux],
  ] as const) {
    for (const [field, value] of Object.entries(requests[kind])) {
      if (!value) continue;
      const name = kind === 'apparmor' ? 'AppArmor' : 'SELinux';
      if (active())
        throw new TsrunError(`${field}: ${name} is active on this host, and tsrun cannot apply "${value}" yet`);
      debug(`${field}: "${value}" ignored: ${name} is not enabled on this host`);
    }
  }
}
