/**
 * Capability names to bits.  An unknown name is left out with a warning
 * that names it (runtime-spec 1.3: a runtime should not fail on one, it may
 * be a newer kernel's; runc warns too); so is a known one this host can
 * never grant.
 */
import fs = require('fs');
import { type Capabilities } from './config';
import { warn } from './log';

export const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
] as const;

export interface CapabilityMasks {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}

/** The host's bounding set: what no process here can hold beyond. */
export function hostBoundingSet(): bigint {
  const line = fs
    .readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('CapBnd:'));
  return line ? BigInt('0x' + line.split(/\s+/)[1]) : (1n << BigInt(CAPABILITIES.length)) - 1n;
}

/** The names this tsrun knows; the others left out with a warning that names `flag` (exec --cap: runc warns as well). */
export function knownCapabilities(names: string[], flag: string): string[] {
  const unknown = names.filter((n) => !(CAPABILITIES as readonly string[]).includes(n));
  if (unknown.length)
    warn(`${flag}: unknown capabilities ignored: ${unknown.map((n) => JSON.stringify(n)).join(', ')}`);
  return names.filter((n) => !unknown.includes(n));
}

export function capabilityMasks(caps: Capabilities, field: string, hostBounding = hostBoundingSet()): CapabilityMasks {
  const masks = { bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n };
  const unavailable = new Set<string>();
  const unknown = new Set<string>();
  for (const set of ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const) {
    for (const name of caps[set] ?? []) {
      const bit = CAPABILITIES.indexOf(name as (typeof CAPABILITIES)[number]);
      // runtime-spec 1.3: a runtime SHOULD NOT fail on a capability it does
      // not know (a newer kernel's, say); runc warns and goes on.
      if (bit < 0) {
        unknown.add(name);
        continue;
      }
      if (!(hostBounding & (1n << BigInt(bit)))) unavailable.add(name);
      masks[set] |= 1n << BigInt(bit);
    }
  }
  if (unknown.size)
    warn(`${field}: unknown capabilities ignored: ${[...unknown].map((n) => JSON.stringify(n)).join(', ')}`);
  if (unavailable.size) warn(`${field}: this host cannot grant ${[...unavailable].join(', ')}; left out`);
  return masks;
}
