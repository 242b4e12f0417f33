import { Command } from './args';
import { HOOK_NAMES, MPOL_FLAGS, MPOL_MODES, NAMESPACE_TYPES } from '../lib/config';
import { CAPABILITIES } from '../lib/capabilities';
import { isKnownMountOption } from '../lib/mount-options';
import { native } from '../lib/native';
import { SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS, SECCOMP_OPERATORS } from '../lib/seccomp';
import { out, verb } from './common';

/** Mount options from config.md that tsrun implements. */
const CANDIDATE_MOUNT_OPTIONS = [
  'async',
  'atime',
  'bind',
  'defaults',
  'dev',
  'diratime',
  'dirsync',
  'exec',
  'iversion',
  'lazytime',
  'loud',
  'mand',
  'noatime',
  'nodev',
  'nodiratime',
  'noexec',
  'noiversion',
  'nolazytime',
  'nomand',
  'norelatime',
  'nostrictatime',
  'nosuid',
  'nosymfollow',
  'private',
  'ratime',
  'rbind',
  'rdev',
  'rdiratime',
  'relatime',
  'remount',
  'rexec',
  'rnoatime',
  'rnodev',
  'rnodiratime',
  'rnoexec',
  'rnorelatime',
  'rnostrictatime',
  'rnosuid',
  'rnosymfollow',
  'ro',
  'rprivate',
  'rrelatime',
  'rro',
  'rrw',
  'rshared',
  'rslave',
  'rstrictatime',
  'rsuid',
  'rsymfollow',
  'runbindable',
  'rw',
  'shared',
  'silent',
  'slave',
  'strictatime',
  'suid',
  'symfollow',
  'sync',
  'unbindable',
  'tmpcopyup',
  'idmap',
  'ridmap',
];

/** The seccomp section: names we accept, and what this libseccomp and kernel can do. */
function seccompFeatures(): Record<string, unknown> {
  const knowsArch = (arch: string): boolean => {
    try {
      native.seccompCompile({
        defaultAction: SECCOMP_ACTIONS.SCMP_ACT_ALLOW,
        arches: [arch.slice('SCMP_ARCH_'.length).toLowerCase()],
        rules: [],
        named: [],
        enosys: false,
      });
      return true;
    } catch {
      return false;
    }
  };
  const NEW_LISTENER = 8;
  return {
    enabled: true,
    actions: Object.keys(SECCOMP_ACTIONS).filter((a) => native.seccompActionAvailable(SECCOMP_ACTIONS[a])),
    operators: Object.keys(SECCOMP_OPERATORS),
    archs: SECCOMP_ARCHES.filter(knowsArch),
    knownFlags: Object.keys(SECCOMP_FLAGS),
    // WAIT_KILLABLE_RECV exists only beside a listener, so it is probed with one.
    supportedFlags: Object.entries(SECCOMP_FLAGS)
      .filter(([name, bit]) =>
        native.seccompFlagSupported(name.endsWith('WAIT_KILLABLE_RECV') ? bit | NEW_LISTENER : bit),
      )
      .map(([name]) => name),
  };
}

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
      // systemd: --systemd-cgroup on v1, hybrid and v2 hosts (tested where systemd is PID 1: test/vm --systemd);
      // systemdUser (the user manager, for rootless) is issue 20's.
      cgroup: { v1: true, v2: true, systemd: true, systemdUser: false, rdma: true },
      seccomp: seccompFeatures(),
      apparmor: { enabled: false },
      selinux: { enabled: false },
      // Refused at create (no resctrl here to build it against); say so.
      intelRdt: { enabled: false, schemata: false, monitoring: false },
      memoryPolicy: { modes: [...MPOL_MODES], flags: [...MPOL_FLAGS] },
      mountExtensions: { idmap: { enabled: true } },
      netDevices: { enabled: true },
    },
    annotations: {
      'io.github.tsrun.version': '0.1.0',
      // As runc's org.opencontainers.runc.checkpoint.enabled: the verbs are there; whether CRIU works on this
      // kernel, checkpoint asks CRIU's own check each time.
      'io.github.tsrun.checkpoint.enabled': 'true',
      'io.github.seccomp.libseccomp.version': native.seccompVersion(),
    },
  };
}

export function featuresCommand(): Command {
  return new Command('features').description('print the features this runtime implements, as JSON').action(
    verb(
      'features',
      () => out(JSON.stringify(features(), null, 2) + '\n'),
      () => undefined,
    ),
  );
}
