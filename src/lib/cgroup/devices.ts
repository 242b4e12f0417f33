/**
 * Device rules (linux.resources.devices), one shape for both drivers: v1
 * writes them to devices.allow/deny, v2 compiles them to an eBPF program.
 */
import { TsrunError } from '../errors';
import { warn } from '../log';
import { type DeviceRuleConfig } from './resources';

export interface DeviceRule {
  allow: boolean;
  type: 'a' | 'b' | 'c';
  /** -1 for any */
  major: number;
  minor: number;
  /** some of "rwm" */
  access: string;
}

const allow = (type: 'b' | 'c', major: number, minor: number, access: string): DeviceRule => ({
  allow: true,
  type,
  major,
  minor,
  access,
});

/** runc's default allow-list, applied after the config's own rules; the path where runc makes that node itself. */
const DEFAULT_DEVICES: Array<{ path?: string; rule: DeviceRule }> = [
  { rule: allow('c', -1, -1, 'm') },
  { rule: allow('b', -1, -1, 'm') }, // mknod of any device; opening them is what matters
  { path: '/dev/null', rule: allow('c', 1, 3, 'rwm') },
  { path: '/dev/random', rule: allow('c', 1, 8, 'rwm') },
  { path: '/dev/full', rule: allow('c', 1, 7, 'rwm') },
  { path: '/dev/tty', rule: allow('c', 5, 0, 'rwm') },
  { path: '/dev/zero', rule: allow('c', 1, 5, 'rwm') },
  { path: '/dev/urandom', rule: allow('c', 1, 9, 'rwm') },
  // ptmx and the pts: /dev/console is a pts bound over it, never the
  // host's console (5:1), which runc does not allow either.
  { rule: allow('c', 136, -1, 'rwm') },
  { rule: allow('c', 5, 2, 'rwm') },
  // /dev/net/tun: runc 1.2.0 dropped it and 1.2.1 put it back, as engines
  // give users no easy way to add it and VPN images mknod it themselves.
  { rule: allow('c', 10, 200, 'rwm') },
];

export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = DEFAULT_DEVICES.map((d) => d.rule);

/**
 * The default nodes a config's linux.devices names again by path.  runc
 * lets the config's entry take priority there: it makes the config's
 * node and leaves that default's rule out of the cgroup, so a config that
 * lists /dev/null and denies every device gets no /dev/null to open.
 * Kept in state.json, for update to write the same defaults.
 */
export function replacedDefaultDevices(nodes: ReadonlyArray<{ path?: unknown }> | undefined): string[] {
  const listed = new Set((nodes ?? []).map((n) => n.path));
  return DEFAULT_DEVICES.filter((d) => d.path !== undefined && listed.has(d.path)).map((d) => d.path!);
}

/** runc's default allow-list less the rules of the nodes the config replaced. */
export function defaultDeviceRules(replaced: readonly string[] = []): DeviceRule[] {
  return DEFAULT_DEVICES.filter((d) => d.path === undefined || !replaced.includes(d.path)).map((d) => d.rule);
}

/** The config's device rules, validated, each field with runc's default where it is left out (type a, any number, rwm). */
export function parseDeviceRules(rules: readonly DeviceRuleConfig[], field = 'linux.resources.devices'): DeviceRule[] {
  return rules.map((d, i) => {
    const type = (d.type ?? 'a') as DeviceRule['type'];
    if (!['a', 'b', 'c'].includes(type))
      throw new TsrunError(`${field}[${i}].type: must be a, b or c, not ${JSON.stringify(type)}`);
    const access = d.access ?? 'rwm';
    if (!/^[rwm]{1,3}$/.test(access))
      throw new TsrunError(`${field}[${i}].access: must be made of r, w and m, not ${JSON.stringify(access)}`);
    if (type === 'a' && [...'rwm'].some((c) => !access.includes(c)))
      // The kernel takes "a" alone, as runc writes it: said, since the config asked for less.
      warn(`${field}[${i}]: a rule of type "a" allows or denies every access; its access "${access}" is ignored`);
    const num = (v: unknown): number => (v === undefined || v === null ? -1 : Number(v));
    return { allow: !!d.allow, type, major: num(d.major), minor: num(d.minor), access };
  });
}

/** The rules a container's cgroup gets: the config's, validated, then the defaults (defaultDeviceRules). */
export function containerDeviceRules(
  rules: readonly DeviceRuleConfig[],
  defaults: readonly DeviceRule[],
  field = 'linux.resources.devices',
): DeviceRule[] {
  return [...parseDeviceRules(rules, field), ...defaults];
}

/** A rule as cgroup v1's devices.allow/deny take it: "c 1:3 rwm", or "a". */
export function v1DeviceRule(rule: DeviceRule): string {
  const num = (n: number): string => (n < 0 ? '*' : String(n));
  return rule.type === 'a' ? 'a' : `${rule.type} ${num(rule.major)}:${num(rule.minor)} ${rule.access}`;
}

/** A default (allow or deny every device) and the exceptions to it: cgroup v1's devices state. */
export interface DeviceRuleSet {
  defaultAllow: boolean;
  exceptions: DeviceRule[];
}

/**
 * What rules applied in order come to, as cgroup v1's devices controller
 * keeps it: a default (allow or deny everything) and exceptions to it,
 * each a type, major, minor and the access it flips.  A rule of type "a"
 * sets the default and drops every exception; a rule that agrees with
 * the default takes its access out of the exception of the same device;
 * one that disagrees adds its access to it.  Taking access out of one
 * device while a wider exception (its major's, its minor's, its type's)
 * still grants it cannot be written as such a list: an error, as runc's
 * devices emulator gives.  Exceptions come sorted by major, minor, type.
 */
export function effectiveDeviceRules(rules: readonly DeviceRule[], field = 'linux.resources.devices'): DeviceRuleSet {
  let defaultAllow = false;
  let exceptions = new Map<string, DeviceRule>();
  const key = (type: string, major: number, minor: number): string => `${type} ${major} ${minor}`;
  const merge = (a: string, b: string): string => [...'rwm'].filter((c) => a.includes(c) || b.includes(c)).join('');
  const without = (a: string, b: string): string => [...'rwm'].filter((c) => a.includes(c) && !b.includes(c)).join('');
  const shared = (a: string, b: string): string => [...'rwm'].filter((c) => a.includes(c) && b.includes(c)).join('');
  for (const rule of rules) {
    if (rule.type === 'a') {
      defaultAllow = rule.allow;
      exceptions = new Map();
      continue;
    }
    const own = key(rule.type, rule.major, rule.minor);
    const current = exceptions.get(own)?.access ?? '';
    if (rule.allow !== defaultAllow) {
      exceptions.set(own, { ...rule, allow: !defaultAllow, access: merge(current, rule.access) });
      continue;
    }
    for (const [major, minor] of [
      [-1, rule.minor],
      [rule.major, -1],
      [-1, -1],
    ]) {
      const widerKey = key(rule.type, major, minor);
      const wider = exceptions.get(widerKey);
      if (widerKey === own || !wider || !shared(rule.access, wider.access)) continue;
      throw new TsrunError(
        `${field}: "${v1DeviceRule(rule)}" takes access out of the wider "${v1DeviceRule(wider)}", which a device allow-list cannot express`,
      );
    }
    const left = without(current, rule.access);
    if (left) exceptions.set(own, { ...exceptions.get(own)!, access: left });
    else exceptions.delete(own);
  }
  const sorted = [...exceptions.values()].sort(
    (a, b) => a.major - b.major || a.minor - b.minor || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
  );
  return { defaultAllow, exceptions: sorted };
}
