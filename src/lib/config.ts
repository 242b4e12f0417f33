// Types and validation for the OCI runtime-spec config.json (v1.3.0, Linux).
//
// parseConfig() checks types and the spec's MUST rules and reports the first
// problem as a one-line ConfigError naming the JSON field path. The parsed
// object is returned in place with two normalisations: optional fields set to
// null are removed (Go-based tools emit them and runc treats them as absent),
// and relative mount destinations, which the spec still allows, are made
// absolute by prefixing "/".
//
// Unsigned 64-bit values (rlimits, scheduler times) arrive as JS numbers and
// lose precision above 2^53; RLIM_INFINITY (2^64-1) reads as 2^64.

import { type LinuxResources } from './cgroup/resources';
import { TsrunError } from './errors';
import { parseMountOptions } from './mount-options';

// ---------------------------------------------------------------- types

export interface Config {
  ociVersion: string;
  root?: Root;
  mounts?: Mount[];
  process?: Process;
  hostname?: string;
  domainname?: string;
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
  [unknownProperty: string]: unknown;
}

export interface Root {
  path: string;
  readonly?: boolean;
}

export interface IDMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Mount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
  uidMappings?: IDMapping[];
  gidMappings?: IDMapping[];
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user?: User;
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  ioPriority?: IOPriority;
  scheduler?: Scheduler;
  execCPUAffinity?: { initial?: string; final?: string };
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
}

export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export const RLIMIT_TYPES = [
  'RLIMIT_AS',
  'RLIMIT_CORE',
  'RLIMIT_CPU',
  'RLIMIT_DATA',
  'RLIMIT_FSIZE',
  'RLIMIT_LOCKS',
  'RLIMIT_MEMLOCK',
  'RLIMIT_MSGQUEUE',
  'RLIMIT_NICE',
  'RLIMIT_NOFILE',
  'RLIMIT_NPROC',
  'RLIMIT_RSS',
  'RLIMIT_RTPRIO',
  'RLIMIT_RTTIME',
  'RLIMIT_SIGPENDING',
  'RLIMIT_STACK',
] as const;
export type RlimitType = (typeof RLIMIT_TYPES)[number];

export interface Rlimit {
  type: RlimitType;
  soft: number;
  hard: number;
}

export const IOPRIO_CLASSES = ['IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE'] as const;

export interface IOPriority {
  class: (typeof IOPRIO_CLASSES)[number];
  priority: number;
}

export const SCHED_POLICIES = [
  'SCHED_OTHER',
  'SCHED_FIFO',
  'SCHED_RR',
  'SCHED_BATCH',
  'SCHED_ISO',
  'SCHED_IDLE',
  'SCHED_DEADLINE',
] as const;
export const SCHED_FLAGS = [
  'SCHED_FLAG_RESET_ON_FORK',
  'SCHED_FLAG_RECLAIM',
  'SCHED_FLAG_DL_OVERRUN',
  'SCHED_FLAG_KEEP_POLICY',
  'SCHED_FLAG_KEEP_PARAMS',
  'SCHED_FLAG_UTIL_CLAMP_MIN',
  'SCHED_FLAG_UTIL_CLAMP_MAX',
] as const;

export interface Scheduler {
  policy: (typeof SCHED_POLICIES)[number];
  nice?: number;
  priority?: number;
  flags?: (typeof SCHED_FLAGS)[number][];
  runtime?: number;
  deadline?: number;
  period?: number;
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export const HOOK_NAMES = [
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
] as const;
export type HookName = (typeof HOOK_NAMES)[number];
export type Hooks = { [name in HookName]?: Hook[] };

export const NAMESPACE_TYPES = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;
export type NamespaceType = (typeof NAMESPACE_TYPES)[number];

export interface Namespace {
  type: NamespaceType;
  path?: string;
}

export interface TimeOffset {
  secs?: number;
  nanosecs?: number;
}

export interface Device {
  type: 'c' | 'b' | 'u' | 'p';
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/** Spec values plus the recursive forms runc also accepts. */
export const ROOTFS_PROPAGATIONS = [
  'shared',
  'slave',
  'private',
  'unbindable',
  'rshared',
  'rslave',
  'rprivate',
  'runbindable',
] as const;

export interface Seccomp {
  defaultAction: string;
  [property: string]: unknown;
}

export interface Personality {
  domain: 'LINUX' | 'LINUX32';
  flags?: string[];
}

export interface IntelRdt {
  closID?: string;
  l3CacheSchema?: string;
  memBwSchema?: string;
  schemata?: string[];
  enableMonitoring?: boolean;
}

export const MPOL_MODES = [
  'MPOL_DEFAULT',
  'MPOL_BIND',
  'MPOL_INTERLEAVE',
  'MPOL_WEIGHTED_INTERLEAVE',
  'MPOL_PREFERRED',
  'MPOL_PREFERRED_MANY',
  'MPOL_LOCAL',
] as const;
export const MPOL_FLAGS = ['MPOL_F_NUMA_BALANCING', 'MPOL_F_RELATIVE_NODES', 'MPOL_F_STATIC_NODES'] as const;

export interface MemoryPolicy {
  mode: (typeof MPOL_MODES)[number];
  nodes?: string;
  flags?: (typeof MPOL_FLAGS)[number][];
}

export interface Linux {
  namespaces?: Namespace[];
  uidMappings?: IDMapping[];
  gidMappings?: IDMapping[];
  timeOffsets?: { monotonic?: TimeOffset; boottime?: TimeOffset };
  devices?: Device[];
  netDevices?: Record<string, { name?: string }>;
  cgroupsPath?: string;
  /** Validated in detail by the cgroup code. */
  resources?: LinuxResources;
  rootfsPropagation?: (typeof ROOTFS_PROPAGATIONS)[number];
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  sysctl?: Record<string, string>;
  /** Validated in detail by the seccomp code. */
  seccomp?: Seccomp;
  personality?: Personality;
  intelRdt?: IntelRdt;
  memoryPolicy?: MemoryPolicy;
}

// ---------------------------------------------------------------- errors

/** A config.json field that is wrong: a TsrunError whose line names the field. */
export class ConfigError extends TsrunError {
  constructor(
    /** JSON path of the offending field, e.g. "mounts[2].destination". */
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`.replace(/\s*\n\s*/g, ' '));
    this.name = 'ConfigError';
  }
}

// ---------------------------------------------------------------- validator helpers

type JsonObject = Record<string, unknown>;

const UINT32_MAX = 0xffffffff;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

function fail(path: string, reason: string): never {
  throw new ConfigError(path, reason);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function fieldPath(parent: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

function expectObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(path, `must be an object, not ${describe(value)}`);
  }
  return value as JsonObject;
}

function expectString(value: unknown, path: string): string {
  if (typeof value !== 'string') fail(path, 'must be a string');
  return value;
}

/** A string that reaches the kernel or exec as a C string, where a NUL byte would cut it short. */
function expectCString(value: unknown, path: string): string {
  const text = expectString(value, path);
  if (text.includes('\0')) fail(path, 'must not contain a NUL byte');
  return text;
}

function expectNonEmptyString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value === '') fail(path, 'must be a non-empty string');
  return expectCString(value, path);
}

function expectAbsolutePath(value: unknown, path: string): string {
  const text = expectCString(value, path);
  if (!text.startsWith('/')) fail(path, `must be an absolute path, got ${JSON.stringify(text)}`);
  return text;
}

function expectBoolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') fail(path, 'must be a boolean');
  return value;
}

function expectInteger(value: unknown, path: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    fail(path, min === 0 ? 'must be a non-negative integer' : 'must be an integer');
  }
  if (value < min || value > max) {
    if (min === 0 && value < 0) fail(path, 'must be a non-negative integer');
    if (max === Infinity) fail(path, `must be at least ${min}`);
    fail(path, `must be between ${min} and ${max}`);
  }
  return value;
}

const expectUint32 = (value: unknown, path: string) => expectInteger(value, path, 0, UINT32_MAX);
const expectUint64 = (value: unknown, path: string) => expectInteger(value, path, 0);
const expectInt32 = (value: unknown, path: string) => expectInteger(value, path, INT32_MIN, INT32_MAX);

function expectOneOf<T extends string>(value: unknown, path: string, allowed: readonly T[], what: string): T {
  const text = expectString(value, path);
  if (!(allowed as readonly string[]).includes(text)) fail(path, `unknown ${what} ${JSON.stringify(text)}`);
  return text as T;
}

function expectArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, `must be an array, not ${describe(value)}`);
  return value;
}

function expectArrayOf<T>(value: unknown, path: string, check: (item: unknown, itemPath: string) => T): T[] {
  return expectArray(value, path).map((item, index) => check(item, `${path}[${index}]`));
}

function expectStringArray(value: unknown, path: string): string[] {
  if (!Array.isArray(value)) fail(path, 'must be an array of strings');
  return expectArrayOf(value, path, expectString);
}

function expectCStringArray(value: unknown, path: string): string[] {
  if (!Array.isArray(value)) fail(path, 'must be an array of strings');
  return expectArrayOf(value, path, expectCString);
}

function expectStringMap(value: unknown, path: string): Record<string, string> {
  const object = expectObject(value, path);
  for (const [key, item] of Object.entries(object)) expectString(item, fieldPath(path, key));
  return object as Record<string, string>;
}

/** Fetch a REQUIRED property. */
function required(object: JsonObject, key: string, path: string): unknown {
  const value = object[key];
  if (value === undefined || value === null) fail(fieldPath(path, key), 'is required');
  return value;
}

/**
 * Validate an OPTIONAL property when present. null counts as absent (and is
 * dropped) because Go marshals unset slices and pointers that way.
 */
/** Check object[key] when present (null counts as absent, and is dropped); returns what the check returned. */
function optional<T>(
  object: JsonObject,
  key: string,
  path: string,
  check: (value: unknown, path: string) => T,
): T | undefined {
  const value = object[key];
  if (value === null) {
    delete object[key];
    return undefined;
  }
  return value !== undefined ? check(value, fieldPath(path, key)) : undefined;
}

/** A network interface name as the kernel takes it (dev_valid_name), or a "%d" template. */
function checkInterfaceName(name: string, path: string): string {
  if (name === '' || Buffer.byteLength(name) > 15)
    fail(path, `${JSON.stringify(name)} is not an interface name: 1 to 15 bytes`);
  if (name === '.' || name === '..' || /[/:\s]/.test(name))
    fail(path, `${JSON.stringify(name)} is not an interface name: no "/", ":" or white space, not "." or ".."`);
  return name;
}

// ---------------------------------------------------------------- sections

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

function checkOciVersion(value: unknown, path: string): void {
  const version = expectString(value, path);
  const match = SEMVER.exec(version);
  if (!match) fail(path, `must be a SemVer 2.0.0 version, got ${JSON.stringify(version)}`);
  // Compatibility is only promised within a major version.
  if (match[1] !== '1') fail(path, `unsupported version ${JSON.stringify(version)} (expected 1.x.y)`);
}

function checkRoot(value: unknown, path: string): void {
  const root = expectObject(value, path);
  expectNonEmptyString(required(root, 'path', path), fieldPath(path, 'path'));
  optional(root, 'readonly', path, expectBoolean);
}

function checkIDMapping(value: unknown, path: string): void {
  const mapping = expectObject(value, path);
  for (const key of ['containerID', 'hostID']) expectUint32(required(mapping, key, path), fieldPath(path, key));
  const size = expectUint32(required(mapping, 'size', path), fieldPath(path, 'size'));
  if (size === 0) fail(fieldPath(path, 'size'), 'must be greater than zero');
}

/** KEY=value entries as in environ(7); runc rejects the same malformed forms. */
function checkEnv(value: unknown, path: string): void {
  expectArrayOf(value, path, (entry, entryPath) => {
    const text = expectString(entry, entryPath);
    const equals = text.indexOf('=');
    if (equals <= 0) fail(entryPath, `must have the form KEY=value, got ${JSON.stringify(text)}`);
    if (text.includes('\0')) fail(entryPath, 'must not contain a NUL byte');
  });
}

interface MountContext {
  /** linux.namespaces contains a user namespace (new or joined). */
  hasUserNamespace: boolean;
}

function checkMount(value: unknown, path: string, context: MountContext): void {
  const mount = expectObject(value, path);
  const destination = expectNonEmptyString(required(mount, 'destination', path), fieldPath(path, 'destination'));
  // Deprecated but still valid (config.md): relative destinations are relative to "/".
  if (!destination.startsWith('/')) mount.destination = '/' + destination;
  optional(mount, 'source', path, expectCString);
  optional(mount, 'type', path, expectCString);
  optional(mount, 'uidMappings', path, (v, p) => expectArrayOf(v, p, checkIDMapping));
  optional(mount, 'gidMappings', path, (v, p) => expectArrayOf(v, p, checkIDMapping));
  const hasUidMappings = mount.uidMappings !== undefined;
  const hasGidMappings = mount.gidMappings !== undefined;
  if (hasUidMappings !== hasGidMappings) {
    fail(
      fieldPath(path, hasUidMappings ? 'gidMappings' : 'uidMappings'),
      `required when ${hasUidMappings ? 'uidMappings' : 'gidMappings'} is set`,
    );
  }

  optional(mount, 'options', path, (v, optionsPath) => {
    const options = expectStringArray(v, optionsPath);
    options.forEach((option, index) => expectNonEmptyString(option, `${optionsPath}[${index}]`));
    // Every string is acceptable from here on: unknown options are filesystem data.
    const parsed = parseMountOptions(options, optionsPath);
    if (parsed.bind && (typeof mount.source !== 'string' || mount.source === '')) {
      fail(fieldPath(path, 'source'), 'required for a bind mount');
    }
    if (parsed.idmap && !hasUidMappings && !context.hasUserNamespace) {
      const option = parsed.recursiveIdmap ? 'ridmap' : 'idmap';
      fail(optionsPath, `"${option}" needs uidMappings/gidMappings on the mount or a user namespace`);
    }
  });
}

function checkCapabilities(value: unknown, path: string): void {
  const capabilities = expectObject(value, path);
  // Names are checked when applied: the spec asks for a warning, not an error,
  // for capabilities the kernel does not know.
  for (const set of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient']) {
    optional(capabilities, set, path, expectStringArray);
  }
}

function checkRlimits(value: unknown, path: string): void {
  const seen = new Set<string>();
  expectArrayOf(value, path, (item, itemPath) => {
    const rlimit = expectObject(item, itemPath);
    const typePath = fieldPath(itemPath, 'type');
    const type = expectOneOf(required(rlimit, 'type', itemPath), typePath, RLIMIT_TYPES, 'rlimit');
    if (seen.has(type)) fail(typePath, `duplicate rlimit ${JSON.stringify(type)}`);
    seen.add(type);
    expectUint64(required(rlimit, 'soft', itemPath), fieldPath(itemPath, 'soft'));
    expectUint64(required(rlimit, 'hard', itemPath), fieldPath(itemPath, 'hard'));
  });
}

/** The largest uid or gid a process may take (runc's limit too). */
export const MAX_ID = INT32_MAX;
export const ID_RANGE = `uids and gids must be in range 0-${MAX_ID}`;

/**
 * A uid or gid for the process.  Past 2^31-1 it is refused, as runc does:
 * 4294967295 is (uid_t)-1, which setresuid and setgroups read as "leave
 * unchanged", so such a user would stay root.
 */
function expectId(value: unknown, path: string): number {
  const id = expectInteger(value, path, 0);
  if (id > MAX_ID) fail(path, `${id} is out of range: ${ID_RANGE}`);
  return id;
}

function checkUser(value: unknown, path: string): void {
  const user = expectObject(value, path);
  expectId(required(user, 'uid', path), fieldPath(path, 'uid'));
  expectId(required(user, 'gid', path), fieldPath(path, 'gid'));
  optional(user, 'umask', path, (v, p) => expectInteger(v, p, 0, 0o7777));
  optional(user, 'additionalGids', path, (v, p) => expectArrayOf(v, p, expectId));
}

function checkScheduler(value: unknown, path: string): void {
  const scheduler = expectObject(value, path);
  const policy = expectOneOf(
    required(scheduler, 'policy', path),
    fieldPath(path, 'policy'),
    SCHED_POLICIES,
    'scheduler policy',
  );
  optional(scheduler, 'nice', path, (v, p) => expectInteger(v, p, -20, 19));
  optional(scheduler, 'priority', path, (v, p) => {
    const priority = expectInt32(v, p);
    // Static priorities only exist for the real-time policies (sched(7)).
    if (priority !== 0 && policy !== 'SCHED_FIFO' && policy !== 'SCHED_RR') {
      fail(p, 'can only be set for SCHED_FIFO or SCHED_RR');
    }
  });
  optional(scheduler, 'flags', path, (v, p) =>
    expectArrayOf(v, p, (flag, flagPath) => expectOneOf(flag, flagPath, SCHED_FLAGS, 'scheduler flag')),
  );
  for (const key of ['runtime', 'deadline', 'period']) {
    optional(scheduler, key, path, (v, p) => {
      // runc's rule: the three only mean something to the deadline scheduler.
      if (expectUint64(v, p) !== 0 && policy !== 'SCHED_DEADLINE') fail(p, 'can only be set for SCHED_DEADLINE');
    });
  }
}

const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** CPUs (or NUMA nodes) tsrun can name in a mask: sched_setaffinity(2) and set_mempolicy(2) take 8192 and 1024 bits here. */
export const MAX_CPUS = 8192;
export const MAX_NUMA_NODES = 1024;

/** The numbers a list such as "0-3,7" names, in order; `limit` is one past the largest allowed. */
export function parseCpuList(text: string, path: string, limit: number, what = 'CPU'): number[] {
  if (text === '') return [];
  if (!CPU_LIST.test(text)) fail(path, `must be a ${what} list such as "0-3,7", got ${JSON.stringify(text)}`);
  const numbers = new Set<number>();
  for (const range of text.split(',')) {
    const [first, last = first] = range.split('-').map(Number);
    if (last < first) fail(path, `${JSON.stringify(range)} is a range that ends before it starts`);
    if (last >= limit) fail(path, `${what} ${last} is out of range: at most ${limit - 1}`);
    for (let n = first; n <= last; n++) numbers.add(n);
  }
  return [...numbers].sort((a, b) => a - b);
}

function checkCpuList(value: unknown, path: string): void {
  parseCpuList(expectString(value, path), path, MAX_CPUS);
}

/** Validate a process object (config.json "process" or an exec --process file). */
export function checkProcess(value: unknown, path = 'process'): Process {
  const process = expectObject(value, path);
  optional(process, 'terminal', path, expectBoolean);
  optional(process, 'consoleSize', path, (v, p) => {
    const size = expectObject(v, p);
    expectUint32(required(size, 'height', p), fieldPath(p, 'height'));
    expectUint32(required(size, 'width', p), fieldPath(p, 'width'));
  });
  optional(process, 'user', path, checkUser);

  const args = process.args;
  const argsPath = fieldPath(path, 'args');
  if (!Array.isArray(args) || args.length === 0) fail(argsPath, 'must be a non-empty array of strings');
  expectArrayOf(args, argsPath, expectCString);

  optional(process, 'commandLine', path, expectString);
  optional(process, 'env', path, checkEnv);
  expectAbsolutePath(required(process, 'cwd', path), fieldPath(path, 'cwd'));
  optional(process, 'capabilities', path, checkCapabilities);
  optional(process, 'rlimits', path, checkRlimits);
  optional(process, 'noNewPrivileges', path, expectBoolean);
  optional(process, 'apparmorProfile', path, expectString);
  optional(process, 'oomScoreAdj', path, (v, p) => expectInteger(v, p, -1000, 1000));
  optional(process, 'selinuxLabel', path, expectString);
  optional(process, 'ioPriority', path, (v, p) => {
    const ioPriority = expectObject(v, p);
    expectOneOf(required(ioPriority, 'class', p), fieldPath(p, 'class'), IOPRIO_CLASSES, 'I/O priority class');
    expectInteger(required(ioPriority, 'priority', p), fieldPath(p, 'priority'), 0, 7);
  });
  optional(process, 'scheduler', path, checkScheduler);
  optional(process, 'execCPUAffinity', path, (v, p) => {
    const affinity = expectObject(v, p);
    optional(affinity, 'initial', p, checkCpuList);
    optional(affinity, 'final', p, checkCpuList);
  });
  return process as unknown as Process;
}

/** Hook timeouts in milliseconds must fit poll(2)'s int (in the helper) and Node's timers. */
const HOOK_TIMEOUT_MAX = Math.floor(INT32_MAX / 1000);

function checkHook(value: unknown, path: string): void {
  const hook = expectObject(value, path);
  expectAbsolutePath(required(hook, 'path', path), fieldPath(path, 'path'));
  optional(hook, 'args', path, expectCStringArray);
  optional(hook, 'env', path, checkEnv);
  optional(hook, 'timeout', path, (v, p) => {
    const timeout = expectInteger(v, p);
    if (timeout <= 0) fail(p, 'must be greater than zero');
    if (timeout > HOOK_TIMEOUT_MAX) fail(p, `must be at most ${HOOK_TIMEOUT_MAX} seconds`);
  });
}

function checkHooks(value: unknown, path: string): void {
  const hooks = expectObject(value, path);
  for (const name of HOOK_NAMES) optional(hooks, name, path, (v, p) => expectArrayOf(v, p, checkHook));
}

function checkAnnotations(value: unknown, path: string): void {
  const annotations = expectStringMap(value, path);
  if ('' in annotations) fail(`${path}[""]`, 'keys must not be empty');
}

function checkNamespaces(value: unknown, path: string): void {
  const seen = new Set<string>();
  expectArrayOf(value, path, (item, itemPath) => {
    const namespace = expectObject(item, itemPath);
    const type = expectOneOf(
      required(namespace, 'type', itemPath),
      fieldPath(itemPath, 'type'),
      NAMESPACE_TYPES,
      'namespace type',
    );
    if (seen.has(type)) fail(path, `duplicate namespace ${JSON.stringify(type)}`);
    seen.add(type);
    optional(namespace, 'path', itemPath, expectAbsolutePath);
  });
}

function checkTimeOffsets(value: unknown, path: string): void {
  const offsets = expectObject(value, path);
  for (const [clock, offset] of Object.entries(offsets)) {
    const clockPath = fieldPath(path, clock);
    if (clock !== 'monotonic' && clock !== 'boottime') {
      fail(clockPath, `unknown clock ${JSON.stringify(clock)} (expected "monotonic" or "boottime")`);
    }
    const entry = expectObject(offset, clockPath);
    // Written out in decimal for the kernel: no exponent notation.
    optional(entry, 'secs', clockPath, (v, p) => expectInteger(v, p, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
    // The kernel rejects nanosecond offsets of a full second or more.
    optional(entry, 'nanosecs', clockPath, (v, p) => expectInteger(v, p, 0, 999_999_999));
  }
}

function checkDevice(value: unknown, path: string): void {
  const device = expectObject(value, path);
  const type = expectOneOf(
    required(device, 'type', path),
    fieldPath(path, 'type'),
    ['c', 'b', 'u', 'p'],
    'device type',
  );
  expectAbsolutePath(required(device, 'path', path), fieldPath(path, 'path'));
  // makedev(3) takes 32-bit major and minor numbers.
  for (const key of ['major', 'minor']) {
    if (type === 'p') optional(device, key, path, expectUint32);
    else expectUint32(required(device, key, path), fieldPath(path, key));
  }
  for (const key of ['fileMode', 'uid', 'gid']) optional(device, key, path, expectUint32);
}

function checkSeccomp(value: unknown, path: string): void {
  const seccomp = expectObject(value, path);
  expectString(required(seccomp, 'defaultAction', path), fieldPath(path, 'defaultAction'));
  optional(seccomp, 'listenerPath', path, expectString);
  optional(seccomp, 'listenerMetadata', path, (v, p) => {
    expectString(v, p);
    if (seccomp.listenerPath === undefined) fail(p, 'must not be set without listenerPath');
  });
}

function checkIntelRdt(value: unknown, path: string): void {
  const rdt = expectObject(value, path);
  optional(rdt, 'closID', path, expectString);
  optional(rdt, 'l3CacheSchema', path, expectString);
  optional(rdt, 'memBwSchema', path, (v, p) => {
    const schema = expectString(v, p);
    if (!schema.startsWith('MB:')) fail(p, 'must start with "MB:"');
    if (schema.includes('\n')) fail(p, 'must not contain newlines');
  });
  optional(rdt, 'schemata', path, (v, p) =>
    expectArrayOf(v, p, (line, linePath) => {
      if (expectString(line, linePath).includes('\n')) fail(linePath, 'must not contain newlines');
    }),
  );
  optional(rdt, 'enableMonitoring', path, expectBoolean);
}

/**
 * linux.resources: the types runtime-spec gives each field the cgroup
 * drivers read, so a wrong one is a config error here rather than a
 * TypeError or a garbage value written to a cgroup knob later.  What the
 * values mean is left to the drivers and the kernel.
 */
export function checkResources(value: unknown, path = 'linux.resources'): void {
  const resources = expectObject(value, path);
  const fields = (
    object: JsonObject,
    objectPath: string,
    checks: Record<string, (v: unknown, p: string) => unknown>,
  ): void => {
    for (const [key, check] of Object.entries(checks)) optional(object, key, objectPath, check);
  };
  const int64 = (v: unknown, p: string) => expectInteger(v, p);
  const uint16 = (v: unknown, p: string) => expectInteger(v, p, 0, 0xffff);
  const majorMinor = (item: JsonObject, itemPath: string): void => {
    for (const key of ['major', 'minor']) expectInteger(required(item, key, itemPath), fieldPath(itemPath, key));
  };
  const list = (check: (item: JsonObject, itemPath: string) => void) => (v: unknown, p: string) =>
    expectArrayOf(v, p, (item, itemPath) => check(expectObject(item, itemPath), itemPath));
  const map = (check: (item: unknown, itemPath: string) => void) => (v: unknown, p: string) => {
    for (const [key, item] of Object.entries(expectObject(v, p))) {
      if (!/^[^\s\0]+$/.test(key)) fail(fieldPath(p, key), 'must be a name without spaces or NUL bytes');
      check(item, fieldPath(p, key));
    }
  };

  fields(resources, path, {
    devices: list((rule, p) => {
      fields(rule, p, { allow: expectBoolean, type: expectString, major: int64, minor: int64, access: expectString });
    }),
    memory: (v, p) =>
      fields(expectObject(v, p), p, {
        limit: int64,
        reservation: int64,
        swap: int64,
        kernel: int64,
        kernelTCP: int64,
        swappiness: expectUint64,
        disableOOMKiller: expectBoolean,
        useHierarchy: expectBoolean,
        checkBeforeUpdate: expectBoolean,
      }),
    cpu: (v, p) =>
      fields(expectObject(v, p), p, {
        shares: expectUint64,
        quota: int64,
        burst: expectUint64,
        period: expectUint64,
        realtimeRuntime: int64,
        realtimePeriod: expectUint64,
        cpus: expectCString,
        mems: expectCString,
        idle: int64,
      }),
    pids: (v, p) => fields(expectObject(v, p), p, { limit: int64 }),
    blockIO: (v, p) => {
      const blockIO = expectObject(v, p);
      fields(blockIO, p, {
        weight: uint16,
        leafWeight: uint16,
        weightDevice: list((device, devicePath) => {
          majorMinor(device, devicePath);
          fields(device, devicePath, { weight: uint16, leafWeight: uint16 });
        }),
      });
      for (const key of [
        'throttleReadBpsDevice',
        'throttleWriteBpsDevice',
        'throttleReadIOPSDevice',
        'throttleWriteIOPSDevice',
      ]) {
        optional(
          blockIO,
          key,
          p,
          list((device, devicePath) => {
            majorMinor(device, devicePath);
            expectUint64(required(device, 'rate', devicePath), fieldPath(devicePath, 'rate'));
          }),
        );
      }
    },
    hugepageLimits: list((limit, p) => {
      // The page size becomes part of a file name: "hugetlb.2MB.max".
      const pageSize = expectString(required(limit, 'pageSize', p), fieldPath(p, 'pageSize'));
      if (!/^\d+[KMGTPE]?B$/.test(pageSize))
        fail(fieldPath(p, 'pageSize'), `must be a size such as "2MB", got ${JSON.stringify(pageSize)}`);
      expectUint64(required(limit, 'limit', p), fieldPath(p, 'limit'));
    }),
    network: (v, p) => {
      const network = expectObject(v, p);
      fields(network, p, {
        classID: expectUint32,
        priorities: list((priority, itemPath) => {
          expectCString(required(priority, 'name', itemPath), fieldPath(itemPath, 'name'));
          expectUint32(required(priority, 'priority', itemPath), fieldPath(itemPath, 'priority'));
        }),
      });
    },
    rdma: map((item, p) => fields(expectObject(item, p), p, { hcaHandles: expectUint32, hcaObjects: expectUint32 })),
    unified: (v, p) => {
      for (const [key, item] of Object.entries(expectObject(v, p))) expectCString(item, fieldPath(p, key));
    },
  });
}

function checkLinux(value: unknown, path: string): void {
  const linux = expectObject(value, path);
  optional(linux, 'namespaces', path, checkNamespaces);
  optional(linux, 'uidMappings', path, (v, p) => expectArrayOf(v, p, checkIDMapping));
  optional(linux, 'gidMappings', path, (v, p) => expectArrayOf(v, p, checkIDMapping));
  optional(linux, 'timeOffsets', path, checkTimeOffsets);
  optional(linux, 'devices', path, (v, p) => expectArrayOf(v, p, checkDevice));
  optional(linux, 'netDevices', path, (v, p) => {
    const devices = expectObject(v, p);
    const names = new Set<string>();
    for (const [name, device] of Object.entries(devices)) {
      const devicePath = fieldPath(p, name);
      checkInterfaceName(name, devicePath);
      const inside =
        optional(expectObject(device, devicePath), 'name', devicePath, (n, np) => {
          const wanted = checkInterfaceName(expectString(n, np), np);
          // A template is the kernel's: one "%d" and no other "%".
          if (wanted.includes('%') && !/^[^%]*%d[^%]*$/.test(wanted))
            fail(np, `${JSON.stringify(wanted)}: a template takes one "%d" and no other "%"`);
          return wanted;
        }) ?? name;
      // Two devices cannot take one name (a "%d" template is the kernel's to number).
      if (!inside.includes('%') && names.has(inside))
        fail(devicePath, `a second device would be named ${JSON.stringify(inside)} in the container`);
      names.add(inside);
    }
  });
  optional(linux, 'cgroupsPath', path, expectCString);
  optional(linux, 'resources', path, checkResources);
  optional(linux, 'rootfsPropagation', path, (v, p) => expectOneOf(v, p, ROOTFS_PROPAGATIONS, 'rootfs propagation'));
  optional(linux, 'maskedPaths', path, (v, p) => expectArrayOf(v, p, expectAbsolutePath));
  optional(linux, 'readonlyPaths', path, (v, p) => expectArrayOf(v, p, expectAbsolutePath));
  optional(linux, 'mountLabel', path, expectString);
  optional(linux, 'sysctl', path, (v, p) => {
    for (const [key, value] of Object.entries(expectStringMap(v, p))) {
      if (key === '' || key.includes('\0')) fail(fieldPath(p, key), 'must be a sysctl name without NUL bytes');
      expectCString(value, fieldPath(p, key));
    }
  });
  optional(linux, 'seccomp', path, checkSeccomp);
  optional(linux, 'personality', path, (v, p) => {
    const personality = expectObject(v, p);
    expectOneOf(required(personality, 'domain', p), fieldPath(p, 'domain'), ['LINUX', 'LINUX32'], 'personality domain');
    optional(personality, 'flags', p, expectStringArray);
  });
  optional(linux, 'intelRdt', path, checkIntelRdt);
  optional(linux, 'memoryPolicy', path, (v, p) => {
    const policy = expectObject(v, p);
    const mode = expectOneOf(required(policy, 'mode', p), fieldPath(p, 'mode'), MPOL_MODES, 'memory policy mode');
    const nodes =
      optional(policy, 'nodes', p, (n, np) => parseCpuList(expectString(n, np), np, MAX_NUMA_NODES, 'NUMA node')) ?? [];
    // set_mempolicy(2)'s rules, as runc checks them.
    if ((mode === 'MPOL_DEFAULT' || mode === 'MPOL_LOCAL') && nodes.length)
      fail(fieldPath(p, 'nodes'), `must be empty for ${mode}`);
    if (
      ['MPOL_BIND', 'MPOL_INTERLEAVE', 'MPOL_PREFERRED_MANY', 'MPOL_WEIGHTED_INTERLEAVE'].includes(mode) &&
      !nodes.length
    ) {
      fail(fieldPath(p, 'nodes'), `${mode} needs at least one node`);
    }
    optional(policy, 'flags', p, (f, fp) =>
      expectArrayOf(f, fp, (flag, flagPath) => expectOneOf(flag, flagPath, MPOL_FLAGS, 'memory policy flag')),
    );
  });
}

/** Rules that tie namespaces to the settings that only make sense inside them (runc enforces the same). */
function checkNamespaceDependencies(config: Config): void {
  const linux = config.linux ?? {};
  const namespaces = linux.namespaces ?? [];
  const find = (type: NamespaceType) => namespaces.find((namespace) => namespace.type === type);
  const userNamespace = find('user');

  for (const key of ['uidMappings', 'gidMappings'] as const) {
    const mappings = linux[key];
    if (!userNamespace) {
      if (mappings !== undefined) fail(`linux.${key}`, 'requires a user namespace in linux.namespaces');
    } else if (userNamespace.path === undefined && (mappings === undefined || mappings.length === 0)) {
      fail(`linux.${key}`, 'required when a user namespace is created');
    }
  }
  // Moved into the container's network namespace, so it must have one of its own (runc's rule).
  if (Object.keys(linux.netDevices ?? {}).length && !find('network')) {
    fail('linux.netDevices', 'requires a network namespace in linux.namespaces');
  }
  if (linux.timeOffsets !== undefined && !find('time')) {
    fail('linux.timeOffsets', 'requires a time namespace in linux.namespaces');
  }
  for (const key of ['hostname', 'domainname'] as const) {
    if (config[key] !== undefined && config[key] !== '' && !find('uts')) {
      fail(key, 'requires a UTS namespace in linux.namespaces');
    }
  }
}

// ---------------------------------------------------------------- entry point

/**
 * Parse and validate config.json text. `process` is optional here (create
 * checks for it) but fully validated when present. Unknown properties are
 * kept and ignored, as the spec requires.
 */
export function parseConfig(text: string): Config {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail('config.json', `invalid JSON: ${(error as Error).message}`);
  }
  const config = expectObject(parsed, 'config.json');

  checkOciVersion(required(config, 'ociVersion', ''), 'ociVersion');
  checkRoot(required(config, 'root', ''), 'root');
  optional(config, 'process', '', checkProcess);
  optional(config, 'hostname', '', expectCString);
  optional(config, 'domainname', '', expectCString);
  optional(config, 'hooks', '', checkHooks);
  optional(config, 'annotations', '', checkAnnotations);
  optional(config, 'linux', '', checkLinux);

  const namespaces = (config.linux as Linux | undefined)?.namespaces ?? [];
  const context: MountContext = { hasUserNamespace: namespaces.some((namespace) => namespace.type === 'user') };
  optional(config, 'mounts', '', (v, p) =>
    expectArrayOf(v, p, (mount, mountPath) => checkMount(mount, mountPath, context)),
  );

  checkNamespaceDependencies(config as Config);
  return config as Config;
}
