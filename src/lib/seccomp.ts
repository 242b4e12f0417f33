/**
 * linux.seccomp: validated and turned into numbers here, compiled to BPF by
 * libseccomp in this process (native/seccomp.c), and cached by a hash of
 * what was compiled, as crun does.  The program rides in the launch plan;
 * tsrun-init loads it with seccomp(2) at the point runc does (see
 * compileProcess in plan.ts).
 */
import fs = require('fs');
import path = require('path');
import { ConfigError, type Seccomp } from './config';
import { TsrunError } from './errors';
import { debug } from './log';
import { native, type SeccompCompileInput } from './native';
import type { OciState, StateStore } from './state';

/** libseccomp's action values (seccomp.h); ERRNO and TRACE carry a 16-bit value. */
export const SECCOMP_ACTIONS: Record<string, number> = {
  SCMP_ACT_KILL: 0x0000_0000,
  SCMP_ACT_KILL_THREAD: 0x0000_0000,
  SCMP_ACT_KILL_PROCESS: 0x8000_0000,
  SCMP_ACT_TRAP: 0x0003_0000,
  SCMP_ACT_ERRNO: 0x0005_0000,
  SCMP_ACT_TRACE: 0x7ff0_0000,
  SCMP_ACT_ALLOW: 0x7fff_0000,
  SCMP_ACT_LOG: 0x7ffc_0000,
  SCMP_ACT_NOTIFY: 0x7fc0_0000,
};
const TAKES_ERRNO = new Set(['SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE']);
/** Defaults that let a call through (a tracer handles new calls itself): no ENOSYS stub, as in runc. */
const ALLOW_LIKE = new Set(['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE']);
const EPERM = 1;

export const SECCOMP_OPERATORS: Record<string, number> = {
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
};

/** The spec's architecture names; libseccomp spells them in lower case without the prefix. */
export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
];

/** seccomp(2) SECCOMP_FILTER_FLAG_* bits. */
export const SECCOMP_FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};
const FLAG_NEW_LISTENER = 8;
const FLAG_TSYNC_ESRCH = 16;

/** A validated seccomp section: what to compile and how to load it. */
export interface SeccompFilter {
  input: SeccompCompileInput;
  /** Flags for seccomp(2) when the init loads the program. */
  flags: number;
  /** Some rule notifies: the init gets a listener fd, which goes to listenerPath. */
  notify: boolean;
  listenerPath?: string;
  listenerMetadata?: string;
  /** Flags dropped because they mean nothing here (said under --debug). */
  notes: string[];
}

/** What the plan carries: the program and how to load it. */
export interface LoadableSeccomp {
  program: Buffer;
  flags: number;
  notify: boolean;
}

function fail(field: string, reason: string): never {
  throw new ConfigError(field, reason);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, field: string): string[] {
  if (!Array.isArray(v)) fail(field, 'must be an array of strings');
  v.forEach((s, i) => typeof s === 'string' || fail(`${field}[${i}]`, 'must be a string'));
  return v as string[];
}

function uint(v: unknown, field: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    fail(field, `must be an integer from 0 to ${max}`);
  return v;
}

/** A uint64 from JSON: numbers past 2^53 arrive rounded, as for every runtime reading JSON numbers. */
function uint64(v: unknown, field: string): bigint {
  if (typeof v !== 'number' || !Number.isFinite(v) || !Number.isInteger(v) || v < 0 || v >= 2 ** 64)
    fail(field, 'must be an unsigned 64-bit integer');
  return BigInt(v);
}

/** An action name plus its errno, as libseccomp's number; errnoRet only where the action takes one. */
function actionValue(name: unknown, errnoRet: unknown, field: string, errnoField: string): number {
  if (typeof name !== 'string' || !(name in SECCOMP_ACTIONS))
    fail(field, `unknown action ${JSON.stringify(name)} (one of ${Object.keys(SECCOMP_ACTIONS).join(', ')})`);
  if (!TAKES_ERRNO.has(name)) {
    if (errnoRet !== undefined) fail(errnoField, `${name} takes no errno`);
    return SECCOMP_ACTIONS[name];
  }
  const errno = errnoRet === undefined ? EPERM : uint(errnoRet, errnoField, 0xffff);
  return (SECCOMP_ACTIONS[name] | errno) >>> 0;
}

/** Check linux.seccomp and turn it into numbers; nothing here needs libseccomp or root. */
export function normalizeSeccomp(section: Seccomp | unknown, field = 'linux.seccomp'): SeccompFilter {
  if (!isObject(section)) fail(field, 'must be an object');
  const s = section;
  const known = new Set([
    'defaultAction',
    'defaultErrnoRet',
    'architectures',
    'flags',
    'listenerPath',
    'listenerMetadata',
    'syscalls',
  ]);
  for (const key of Object.keys(s)) if (!known.has(key)) fail(`${field}.${key}`, 'unknown seccomp property');

  if (s.defaultAction === 'SCMP_ACT_NOTIFY')
    fail(`${field}.defaultAction`, 'SCMP_ACT_NOTIFY cannot be the default action');
  const defaultAction = actionValue(
    s.defaultAction,
    s.defaultErrnoRet,
    `${field}.defaultAction`,
    `${field}.defaultErrnoRet`,
  );

  const arches = s.architectures === undefined ? [] : stringList(s.architectures, `${field}.architectures`);
  arches.forEach(
    (a, i) =>
      SECCOMP_ARCHES.includes(a) || fail(`${field}.architectures[${i}]`, `unknown architecture ${JSON.stringify(a)}`),
  );

  let flags = 0;
  const notes: string[] = [];
  const flagNames = s.flags === undefined ? [] : stringList(s.flags, `${field}.flags`);
  flagNames.forEach((f, i) => {
    if (!(f in SECCOMP_FLAGS))
      fail(
        `${field}.flags[${i}]`,
        `unknown flag ${JSON.stringify(f)} (one of ${Object.keys(SECCOMP_FLAGS).join(', ')})`,
      );
    flags |= SECCOMP_FLAGS[f];
  });

  if (s.listenerPath !== undefined && (typeof s.listenerPath !== 'string' || !path.isAbsolute(s.listenerPath)))
    fail(`${field}.listenerPath`, 'must be an absolute path');
  if (s.listenerMetadata !== undefined) {
    if (typeof s.listenerMetadata !== 'string') fail(`${field}.listenerMetadata`, 'must be a string');
    if (s.listenerPath === undefined) fail(`${field}.listenerMetadata`, 'must not be set without listenerPath');
  }

  const rules: SeccompCompileInput['rules'] = [];
  const named = new Set<string>();
  let notify = false;
  if (s.syscalls !== undefined && !Array.isArray(s.syscalls)) fail(`${field}.syscalls`, 'must be an array');
  ((s.syscalls as unknown[]) ?? []).forEach((entry, i) => {
    const at = `${field}.syscalls[${i}]`;
    if (!isObject(entry)) fail(at, 'must be an object');
    const names = stringList(entry.names, `${at}.names`);
    if (names.length === 0) fail(`${at}.names`, 'must name at least one syscall');
    for (const name of names) named.add(name);
    const action = actionValue(entry.action, entry.errnoRet, `${at}.action`, `${at}.errnoRet`);
    if (entry.args !== undefined && !Array.isArray(entry.args)) fail(`${at}.args`, 'must be an array');
    const args = ((entry.args as unknown[]) ?? []).map((a, j) => {
      const af = `${at}.args[${j}]`;
      if (!isObject(a)) fail(af, 'must be an object');
      if (typeof a.op !== 'string' || !(a.op in SECCOMP_OPERATORS))
        fail(
          `${af}.op`,
          `unknown operator ${JSON.stringify(a.op)} (one of ${Object.keys(SECCOMP_OPERATORS).join(', ')})`,
        );
      return {
        index: uint(a.index, `${af}.index`, 5),
        op: SECCOMP_OPERATORS[a.op as string],
        value: uint64(a.value, `${af}.value`),
        valueTwo: a.valueTwo === undefined ? 0n : uint64(a.valueTwo, `${af}.valueTwo`),
      };
    });
    // runc's rules: a rule that repeats the default action is redundant and
    // skipped; conditions on one argument are alternatives (libseccomp takes
    // one per argument per rule), so each becomes a rule of its own.
    if (action === defaultAction) return;
    if (entry.action === 'SCMP_ACT_NOTIFY') notify = true;
    const perArgument = new Set(args.map((a) => a.index)).size === args.length;
    for (const name of names) {
      if (perArgument) rules.push({ name, action, args });
      else for (const a of args) rules.push({ name, action, args: [a] });
    }
  });

  if (notify) {
    if (s.listenerPath === undefined) fail(`${field}.listenerPath`, 'required when a rule uses SCMP_ACT_NOTIFY');
    flags |= FLAG_NEW_LISTENER;
    // A listener and TSYNC together need TSYNC_ESRCH (seccomp(2)); our init is single-threaded anyway.
    if (flags & SECCOMP_FLAGS.SECCOMP_FILTER_FLAG_TSYNC) flags |= FLAG_TSYNC_ESRCH;
  } else if (flags & SECCOMP_FLAGS.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
    // The kernel takes it only with a listener; without one it means nothing.
    flags &= ~SECCOMP_FLAGS.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    notes.push('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no rule uses SCMP_ACT_NOTIFY');
  }

  return {
    input: {
      defaultAction,
      arches: arches.map((a) => a.slice('SCMP_ARCH_'.length).toLowerCase()),
      rules,
      named: [...named].sort(),
      // runc's rule: a syscall newer than every one the profile names gets
      // ENOSYS, not the default errno, unless the default lets calls through.
      enosys: !ALLOW_LIKE.has(s.defaultAction as string),
    },
    flags,
    notify,
    listenerPath: s.listenerPath as string | undefined,
    listenerMetadata: s.listenerMetadata as string | undefined,
    notes,
  };
}

/** The cache key: what libseccomp compiles, which libseccomp, for which machine. */
export function seccompCacheKey(filter: SeccompFilter, libseccompVersion: string): string {
  const canonical = JSON.stringify(filter.input, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  // Loaded here, not at start-up: only containers with a filter pay for it.
  const { createHash } = require('crypto') as typeof import('crypto');
  return createHash('sha256').update(`${libseccompVersion}\n${process.arch}\n${canonical}`).digest('hex');
}

export interface CompileResult {
  program: Buffer;
  /** Syscall names libseccomp did not know (skipped, as runc does); empty on a cache hit. */
  ignored: string[];
  fromCache: boolean;
}

/**
 * The BPF program for a filter, from `cacheDir` when an earlier run
 * compiled the same rules.  The cache lives under --root (root-only), so
 * nothing the container controls can plant a program there.
 */
export function compileSeccomp(filter: SeccompFilter, cacheDir?: string): CompileResult {
  const file = cacheDir ? path.join(cacheDir, `${seccompCacheKey(filter, native.seccompVersion())}.bpf`) : undefined;
  if (file) {
    try {
      const program = fs.readFileSync(file);
      if (program.length > 0 && program.length % 8 === 0) return { program, ignored: [], fromCache: true };
    } catch {
      // not cached yet
    }
  }
  let compiled: { program: Buffer; ignored: string[] };
  try {
    compiled = native.seccompCompile(filter.input);
  } catch (err) {
    throw new ConfigError('linux.seccomp', (err as Error).message.replace(/^seccomp: /, ''));
  }
  if (file) {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, compiled.program, { mode: 0o600 });
      fs.renameSync(tmp, file);
    } catch {
      fs.rmSync(tmp, { force: true }); // a cache we cannot write only costs time
    }
  }
  return { ...compiled, fromCache: false };
}

/** The container process state a seccomp agent receives with the listener fd (config-linux.md). */
export function listenerMessage(ociVersion: string, pid: number, metadata: string | undefined, state: object): Buffer {
  return Buffer.from(
    JSON.stringify({ ociVersion, fds: ['seccompFd'], pid, ...(metadata === undefined ? {} : { metadata }), state }),
  );
}

/** The compiled filter for the plan, through the cache under --root. */
export function loadableSeccomp(filter: SeccompFilter, store: StateStore): LoadableSeccomp {
  for (const note of filter.notes) debug(`linux.seccomp: ${note}`);
  const { program, ignored, fromCache } = compileSeccomp(filter, store.seccompCacheDir());
  debug(`linux.seccomp: ${program.length / 8} BPF instructions${fromCache ? ' (cached)' : ''}`);
  if (ignored.length) debug(`linux.seccomp: unknown syscalls ignored: ${ignored.join(', ')}`);
  return { program, flags: filter.flags, notify: filter.notify };
}

/**
 * SCMP_ACT_NOTIFY: one connection to listenerPath per process, carrying
 * the container process state and the listener fd (config-linux.md).
 */
export function sendSeccompListener(filter: SeccompFilter, fd: number, pid: number, state: OciState): void {
  const where = filter.listenerPath!;
  let sock = -1;
  try {
    sock = native.connectUnix(where);
    native.sendFd(sock, fd, listenerMessage(state.ociVersion, pid, filter.listenerMetadata, state));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TsrunError(
      `linux.seccomp.listenerPath: send the seccomp listener to ${where}: ${native.strerror(Number(e.errno ?? 0)).toLowerCase()}`,
    );
  } finally {
    if (sock >= 0) native.close(sock);
  }
}
