import { Command } from 'commander';
import { HOOK_NAMES, NAMESPACE_TYPES } from '../lib/config';
import { CAPABILITIES } from '../lib/capabilities';
import { isKnownMountOption } from '../lib/mount-options';
import { out, verb } from './common';

/** Mount options from config.md that tsrun implements. */
const CANDIDATE_MOUNT_OPTIONS = [
  'async', 'atime', 'bind', 'defaults', 'dev', 'diratime', 'dirsync', 'exec', 'iversion', 'lazytime',
  'loud', 'mand', 'noatime', 'nodev', 'nodiratime', 'noexec', 'noiversion', 'nolazytime', 'nomand',
  'norelatime', 'nostrictatime', 'nosuid', 'nosymfollow', 'private', 'ratime', 'rbind', 'rdev',
  'rdiratime', 'relatime', 'remount', 'rexec', 'rnoatime', 'rnodev', 'rnodiratime', 'rnoexec',
  'rnorelatime', 'rnostrictatime', 'rnosuid', 'rnosymfollow', 'ro', 'rprivate', 'rrelatime', 'rro',
  'rrw', 'rshared', 'rslave', 'rstrictatime', 'rsuid', 'rsymfollow', 'runbindable', 'rw', 'shared',
  'silent', 'slave', 'strictatime', 'suid', 'symfollow', 'sync', 'unbindable',
  'tmpcopyup', 'idmap', 'ridmap',
];

/** What `tsrun features` reports: only what is implemented today. */
export function features(): Record<string, unknown> {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: '1.3.0',
    hooks: [...HOOK_NAMES],
    mountOptions: CANDIDATE_MOUNT_OPTIONS.filter(isKnownMountOption),
    linux: {
      namespaces: [...NAMESPACE_TYPES],
      capabilities: [...CAPABILITIES],
      cgroup: { v1: true, v2: false, systemd: false, systemdUser: false, rdma: false },
      seccomp: { enabled: false },
      apparmor: { enabled: false },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: true } },
      netDevices: { enabled: false },
    },
    annotations: {
      'io.github.tsrun.version': '0.1.0',
    },
  };
}

export function featuresCommand(): Command {
  return new Command('features')
    .description('print the features this runtime implements, as JSON')
    .action(verb('features', () => out(JSON.stringify(features(), null, 2) + '\n'), () => undefined));
}
