/**
 * The systemd cgroup manager's pure part: the unit a container gets from
 * its cgroupsPath ("slice:prefix:name", as engines send it with
 * --systemd-cgroup), where that unit's cgroup is, and the unit properties
 * linux.resources becomes (systemd.resource-control(5)).  The rules are
 * runc's documented ones (its docs/systemd.md), so a unit looks the same
 * whichever runtime made it; what systemd cannot express is written to the
 * cgroup files afterwards by the version writers (v1.ts, v2.ts), as runc
 * does.  Unit-tested without systemd; the D-Bus side is systemd.ts.
 */
import { TsrunError } from '../errors';
import { parseGVariantText } from '../dbus/gvariant-text';
import { type Variant, variant } from '../dbus/wire';
import { SYSTEMD_PROPERTY_ANNOTATION } from './manager';
import { type DeviceRule, effectiveDeviceRules, v1DeviceRule } from './devices';
import { type LinuxResources } from './resources';
import { sharesToWeight, swapMax } from './v2';

/** The unit a container runs in. */
export interface SystemdUnit {
  /** The parent slice: "system.slice", "machine.slice", "-.slice" (the root). */
  slice: string;
  /** "<prefix>-<name>.scope", or a ".slice" name given as is. */
  name: string;
  /** Its cgroup, below a hierarchy's root: "/system.slice/tsrun-c1.scope". */
  cgroupPath: string;
}

/** systemd unit names: no "/", nothing but these characters, at most 255 bytes. */
const UNIT_CHARS = /^[A-Za-z0-9:_.\\@-]+$/;

/**
 * A slice name as the path of its cgroup: systemd nests "a-b.slice" in
 * "a.slice" ("/a.slice/a-b.slice"); "-.slice" is the root.
 */
export function expandSlice(slice: string, field = 'linux.cgroupsPath'): string {
  const bad = (why: string): never => {
    throw new TsrunError(`${field}: ${JSON.stringify(slice)} is not a slice name: ${why}`);
  };
  if (!slice.endsWith('.slice') || slice === '.slice') bad('it must end in ".slice"');
  if (slice.includes('/')) bad('it may not contain "/"');
  if (!UNIT_CHARS.test(slice)) bad('it has characters a unit name cannot have');
  const stem = slice.slice(0, -'.slice'.length);
  if (stem === '-') return '/';
  const parts = stem.split('-');
  if (parts.some((p) => p === '')) bad('"-" separates non-empty parts');
  let path = '';
  for (let i = 1; i <= parts.length; i++) path += `/${parts.slice(0, i).join('-')}.slice`;
  return path;
}

/**
 * linux.cgroupsPath under --systemd-cgroup: "[slice]:[prefix]:[name]",
 * the slice defaulting to system.slice; no cgroupsPath is ":tsrun:<id>".
 * A name ending in ".slice" is the unit itself (a slice, the prefix
 * ignored); otherwise the unit is the scope "<prefix>-<name>.scope".
 * `manager`: a user's systemd manager (issue 20), whose units sit below
 * its own cgroup (`controlGroup`, its ControlGroup property) and whose
 * default slice is user.slice, as runc places them.
 */
export function systemdUnitFor(
  cgroupsPath: string | undefined,
  id: string,
  manager: { defaultSlice: string; controlGroup: string } = { defaultSlice: 'system.slice', controlGroup: '' },
): SystemdUnit {
  const field = 'linux.cgroupsPath';
  const parts = (cgroupsPath || `:tsrun:${id}`).split(':');
  if (parts.length !== 3)
    throw new TsrunError(
      `${field}: ${JSON.stringify(cgroupsPath)} is not "slice:prefix:name", which the systemd cgroup manager needs`,
    );
  const [sliceGiven, prefix, name] = parts;
  const slice = sliceGiven || manager.defaultSlice;
  const parentPath = expandSlice(slice, field);
  if (!name) throw new TsrunError(`${field}: ${JSON.stringify(cgroupsPath)} names no unit`);
  const unit = name.endsWith('.slice') ? name : prefix ? `${prefix}-${name}.scope` : `${name}.scope`;
  if (!UNIT_CHARS.test(unit) || Buffer.byteLength(unit) > 255)
    throw new TsrunError(`${field}: ${JSON.stringify(unit)} is not a unit name systemd takes`);
  // A slice unit nests by its own name; a scope sits in its parent slice.
  const below = manager.controlGroup.replace(/\/$/, '');
  const cgroupPath = unit.endsWith('.slice')
    ? `${below}${expandSlice(unit, field)}`
    : `${below}${parentPath === '/' ? '' : parentPath}/${unit}`;
  return { slice, name: unit, cgroupPath };
}

/** A property of StartTransientUnit or SetUnitProperties: name and value. */
export type UnitProperty = [name: string, value: Variant];

const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
/** systemd's "infinity" for a limit: -1 in the config. */
const limit = (v: number): bigint => (v === -1 ? UINT64_MAX : BigInt(v));

/** "0-3,7" as systemd's CPU/NUMA bitmask: byte i, bit j is number 8i+j. */
export function rangeToMask(list: string, field: string): number[] {
  const bytes: number[] = [];
  for (const part of list
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new TsrunError(`${field}: ${JSON.stringify(list)} is not a list such as "0-3,7"`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from || to > 8191) throw new TsrunError(`${field}: ${JSON.stringify(part)} is not a range it can take`);
    for (let n = from; n <= to; n++) {
      while (bytes.length <= n >> 3) bytes.push(0);
      bytes[n >> 3] |= 1 << (n & 7);
    }
  }
  return bytes;
}

/**
 * cpu.quota/cpu.period as CPUQuotaPerSecUSec: the CPU time allowed per
 * second, which systemd keeps in steps of 10 ms: rounded up to one.
 */
export function cpuQuotaPerSecUSec(quota: number, period: number): bigint {
  const perSec = (BigInt(quota) * 1_000_000n) / BigInt(period);
  return perSec % 10_000n === 0n ? perSec : (perSec / 10_000n + 1n) * 10_000n;
}

/**
 * The manager's Version property as a number: "252.39-1~deb12u1" is 252,
 * and a leading "v" (some distributions' "v257.1") is dropped, as runc
 * reads it; undefined when no number leads it.
 */
export function systemdVersionNumber(text: string): number | undefined {
  const digits = /^"?v?(\d+)/.exec(text);
  return digits ? Number(digits[1]) : undefined;
}

/** The properties every unit of a container gets, whatever its limits. */
export function baseProperties(unit: SystemdUnit, id: string, version: 1 | 2, pids: number[]): UnitProperty[] {
  const props: UnitProperty[] = [['Description', variant('s', `tsrun container ${id}`)]];
  if (unit.name.endsWith('.slice')) props.push(['Wants', variant('as', [unit.slice])]);
  else props.push(['Slice', variant('s', unit.slice)], ['Delegate', variant('b', true)]);
  // Accounting on for every controller, so each one's files are there to read and write.
  props.push(
    ['MemoryAccounting', variant('b', true)],
    ['CPUAccounting', variant('b', true)],
    [version === 2 ? 'IOAccounting' : 'BlockIOAccounting', variant('b', true)],
    ['TasksAccounting', variant('b', true)],
    // No stop job waits on other units: the container ends when its processes do.
    ['DefaultDependencies', variant('b', false)],
  );
  if (pids.length) props.push(['PIDs', variant('au', pids)]);
  return props;
}

/**
 * linux.resources as unit properties, for the systemd version on the
 * host (older ones lack some): cgroup v1 and v2 as runc's tables have
 * them.  What is not here is written to the files afterwards.
 */
export function resourceProperties(
  r: LinuxResources | undefined,
  version: 1 | 2,
  systemdVersion: number,
): UnitProperty[] {
  if (!r) return [];
  const props: UnitProperty[] = [];
  const t = (name: string, v: bigint): void => void props.push([name, variant('t', v)]);
  const mem = r.memory;
  const cpu = r.cpu;
  if (version === 1) {
    if (mem?.limit) t('MemoryLimit', limit(mem.limit));
    if (cpu?.shares) t('CPUShares', BigInt(cpu.shares));
    if (r.blockIO?.weight) t('BlockIOWeight', BigInt(r.blockIO.weight));
  } else {
    if (mem?.limit) t('MemoryMax', limit(mem.limit));
    if (mem?.reservation) t('MemoryLow', BigInt(mem.reservation));
    if (mem?.swap) {
      const swap = swapMax(mem.limit || undefined, mem.swap);
      t('MemorySwapMax', swap === 'max' ? UINT64_MAX : BigInt(swap));
    }
    if (cpu?.shares) t('CPUWeight', BigInt(sharesToWeight(cpu.shares)));
  }
  if (r.pids?.limit) t('TasksMax', limit(r.pids.limit));
  if (cpu?.quota || cpu?.period) {
    const period = cpu.period || 100_000;
    if (systemdVersion >= 242) t('CPUQuotaPeriodUSec', BigInt(period));
    if (cpu.quota && cpu.quota > 0) t('CPUQuotaPerSecUSec', cpuQuotaPerSecUSec(cpu.quota, period));
    else if (cpu.quota === -1) t('CPUQuotaPerSecUSec', UINT64_MAX);
  }
  if (systemdVersion >= 244) {
    if (cpu?.cpus) props.push(['AllowedCPUs', variant('ay', rangeToMask(cpu.cpus, 'linux.resources.cpu.cpus'))]);
    if (cpu?.mems) props.push(['AllowedMemoryNodes', variant('ay', rangeToMask(cpu.mems, 'linux.resources.cpu.mems'))]);
  }
  return props;
}

/**
 * `org.systemd.property.NAME: VALUE` annotations as unit properties, last
 * so they override tsrun's own: VALUE in GVariant text format
 * (`"uint64 123456789"`, `"'inactive-or-failed'"`), NAME letters only, as
 * runc checks them.  A NAME ending in a lowercase letter and "Sec" is in
 * seconds and goes to systemd as NAMEUSec in microseconds, as runc
 * converts it.  A bad one is an error naming the annotation.
 */
export function annotationProperties(annotations: Record<string, string> | undefined): UnitProperty[] {
  const props: UnitProperty[] = [];
  for (const [key, text] of Object.entries(annotations ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!key.startsWith(SYSTEMD_PROPERTY_ANNOTATION)) continue;
    const field = `annotations[${JSON.stringify(key)}]`;
    let name = key.slice(SYSTEMD_PROPERTY_ANNOTATION.length);
    if (name.length < 3 || !/^[A-Za-z]+$/.test(name))
      throw new TsrunError(`${field}: "${name}" is not a unit property name (three or more letters, nothing else)`);
    let value: Variant;
    try {
      value = parseGVariantText(text);
    } catch (err) {
      throw new TsrunError(`${field}: ${JSON.stringify(text)} is not a GVariant text value: ${(err as Error).message}`);
    }
    if (/[a-z]Sec$/.test(name)) {
      name = `${name.slice(0, -3)}USec`;
      value = variant('t', secondsToUSec(value, field));
    }
    props.push([name, value]);
  }
  return props;
}

/** A number of seconds as microseconds, wrapped to uint64 as runc's conversion wraps it. */
function secondsToUSec(value: Variant, field: string): bigint {
  const v = value.value;
  if ('ynqiuxt'.includes(value.signature) && (typeof v === 'number' || typeof v === 'bigint'))
    return BigInt.asUintN(64, BigInt(v) * 1_000_000n);
  if (value.signature === 'd' && typeof v === 'number' && Number.isFinite(v))
    return BigInt.asUintN(64, BigInt(Math.trunc(v * 1_000_000)));
  throw new TsrunError(`${field}: a property in seconds wants a number, not a value of type ${value.signature}`);
}

/** How the host answers for systemd older than 240 (its /proc/devices, whether a path exists). */
export interface DeviceHost {
  procDevices(): string;
  exists(path: string): boolean;
}

/**
 * Device rules (the config's, then runc's defaults) as DevicePolicy and
 * DeviceAllow, as runc sends them: without them a unit has
 * DevicePolicy=auto and no allow-list, and on cgroup v1 systemd writes
 * "a" (every device) to the scope's devices.allow at its next
 * daemon-reload.  An empty DeviceAllow first clears what the unit had;
 * "strict" denies the rest.  systemd's names: "/dev/char/1:3" for one
 * device, "char-136" for a major (before systemd 240, the major's group
 * in /proc/devices), "char-*" for every one.  What it cannot express is
 * left to the files tsrun writes, with a warning, as runc does: a deny
 * list (DevicePolicy must then deny everything; allow-all is "auto"),
 * a rule for a minor of every major.
 */
export function deviceProperties(
  rules: readonly DeviceRule[],
  systemdVersion: number,
  host: DeviceHost,
): { properties: UnitProperty[]; warnings: string[] } {
  const clear: UnitProperty = ['DeviceAllow', variant('a(ss)', [])];
  const set = effectiveDeviceRules(rules);
  if (set.defaultAllow) {
    if (!set.exceptions.length) return { properties: [clear, ['DevicePolicy', variant('s', 'auto')]], warnings: [] };
    return {
      properties: [clear, ['DevicePolicy', variant('s', 'strict')]],
      warnings: [
        'linux.resources.devices: systemd takes no deny list; its unit denies every device and tsrun writes the rules to the cgroup itself',
      ],
    };
  }
  const allowed: Array<[string, string]> = [];
  const warnings: string[] = [];
  for (const rule of set.exceptions) {
    const kind = rule.type === 'b' ? 'block' : 'char';
    let name: string;
    if (rule.major === -1) {
      if (rule.minor !== -1) {
        warnings.push(
          `linux.resources.devices: systemd has no name for "${v1DeviceRule(rule)}" (a minor of every major); tsrun writes it to the cgroup itself`,
        );
        continue;
      }
      name = `${kind}-*`;
    } else if (rule.minor === -1) {
      if (systemdVersion >= 240) name = `${kind}-${rule.major}`;
      else {
        const group = deviceGroup(host.procDevices(), rule.type as 'b' | 'c', rule.major);
        if (!group) {
          warnings.push(
            `linux.resources.devices: no ${kind} device group of major ${rule.major} in /proc/devices for systemd ${systemdVersion}; tsrun writes "${v1DeviceRule(rule)}" to the cgroup itself`,
          );
          continue;
        }
        name = `${kind}-${group}`;
      }
    } else {
      name = `/dev/${kind}/${rule.major}:${rule.minor}`;
      // Before 240 systemd stat()s the path and drops a rule whose device is not there.
      if (systemdVersion < 240 && !host.exists(name)) continue;
    }
    allowed.push([name, rule.access]);
  }
  return {
    properties: [clear, ['DevicePolicy', variant('s', 'strict')], ['DeviceAllow', variant('a(ss)', allowed)]],
    warnings,
  };
}

/** The group name /proc/devices gives a major of that type ("pts" for char 136), or undefined. */
export function deviceGroup(procDevices: string, type: 'b' | 'c', major: number): string | undefined {
  let section = '';
  for (const raw of procDevices.split('\n')) {
    const line = raw.trim();
    if (line === 'Character devices:') section = 'c';
    else if (line === 'Block devices:') section = 'b';
    else if (section === type) {
      const m = /^(\d+)\s+(\S+)$/.exec(line);
      if (m && Number(m[1]) === major) return m[2];
    }
  }
  return undefined;
}
