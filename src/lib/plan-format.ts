/**
 * The launch plan's wire format, mirrored from native/plan.h (a unit test
 * checks the numbers agree).  One field schema per op drives both the
 * encoder used by the compiler and the decoder used by tests and
 * `--debug`, so the two can never drift apart.
 */

export const PLAN_MAGIC = 0x50525354; // "TSRP"
export const PLAN_VERSION = 1;

export enum Op {
  SETNS = 1,
  UNSHARE_USER = 2,
  UNSHARE = 3,
  BECOME_ROOT = 4,
  TIMENS_OFFSETS = 5,
  CLONE_INIT = 6,
  SETSID = 7,
  SETHOSTNAME = 8,
  SETDOMAINNAME = 9,
  ROOTFS_PREPARE = 10,
  MOUNT = 11,
  MKNOD = 12,
  SYMLINK = 13,
  MKDIR = 14,
  PARENT_HOOKS = 15,
  HOOK = 16,
  PIVOT_ROOT = 17,
  REMOUNT_ROOT_RO = 18,
  ROOT_PROPAGATION = 19,
  SYSCTL = 20,
  CONSOLE = 21,
  PARENT_RLIMITS = 22,
  OOM_SCORE_ADJ = 23,
  NO_NEW_PRIVS = 24,
  USER = 25,
  CHDIR = 26,
  EXEC_PREPARE = 27,
  WAIT_START = 28,
  EXEC = 29,
  SESSION_KEYRING = 30,
  IDMAP_PREPARE = 31,
  CAPS_BOUNDING = 32,
  CAPS_SET = 33,
  READONLY_PATH = 34,
  MASK_PATH = 35,
  SECCOMP = 36,
  JOIN_CGROUP = 37,
  HIDE_HOST_FS = 38,
  LOOPBACK_UP = 39,
  SCHEDULER = 40,
  IOPRIO = 41,
  PERSONALITY = 42,
  MEMPOLICY = 43,
  CPU_AFFINITY = 44,
  HOME = 45,
  REMOUNT_RO = 46,
  CHROOT = 47,
  MOUNT_SOURCE_SERVER = 48,
  MOUNT_SOURCES_JOIN = 49,
  MOUNT_SOURCES_DONE = 50,
  REOPEN_DEV_NULL = 51,
}

/** The parent/child sync messages (the protocol is drawn in native/plan.h). */
export enum Sync {
  USERNS_READY = 1,
  MAPS_WRITTEN = 2,
  INIT_PID = 3,
  CONTINUE = 4,
  RUN_HOOKS = 5,
  HOOKS_DONE = 6,
  READY = 7,
  ERROR = 8,
  SET_RLIMITS = 9,
  SECCOMP_LISTENER = 10,
}

/** OP_MOUNT kinds: a new filesystem, a bind, a tree OP_IDMAP_PREPARE built (attached by slot). */
export const MountKind = { FS: 0, BIND: 1, PREPARED: 2 } as const;
/** The slot of a mount that is not prepared by OP_IDMAP_PREPARE. */
export const NO_SLOT = 0xffffffff;
/**
 * What OP_MOUNT makes when its destination is missing.  PLAIN_DIR (proc,
 * sysfs): a directory reached through no symlink at all, which after
 * mounting must resolve to the new mount.
 */
export const CreateKind = { DIR: 0, FILE: 1, PLAIN_DIR: 2 } as const;
/** The hook stages the helper runs (the others are run by TypeScript). */
export const HookStage = { CREATE_CONTAINER: 3, START_CONTAINER: 4 } as const;
/** OP_CPU_AFFINITY: process.execCPUAffinity's two stages, and the reset of an exec that names neither. */
export const AffinityStage = { INITIAL: 0, FINAL: 1, RESET: 2 } as const;
/** OP_PIVOT_ROOT: pivot_root; --no-pivot's move and chroot; a chroot alone (no mount namespace of the container's own). */
export const PivotMode = { PIVOT: 0, MOVE: 1, CHROOT: 2 } as const;
/** OP_CHDIR: the try before the user switch, and the one after it (only when the first was refused). */
export const ChdirStage = { BEFORE_USER: 0, AFTER_USER: 1 } as const;

/** How each field is written (native/plan.h describes the encoding). */
export type FieldType = 'u32' | 'u64' | 'str' | 'strv' | 'u32v' | 'bytes';
type Schema = ReadonlyArray<readonly [name: string, type: FieldType]>;

/**
 * The one definition of every op's fields, in wire order.  The encoder and
 * decoder below walk it; `PlanOp` derives each op's field types from it;
 * native/plan-ops.h (the helper's enum, one struct and one decoder per op)
 * is generated from it by `npm run plan-header` (src/lib/plan-header.ts),
 * and a unit test fails when the committed header differs.
 */
export const OP_SCHEMA = {
  [Op.SETNS]: [
    ['nstype', 'u32'],
    ['path', 'str'],
  ],
  [Op.UNSHARE_USER]: [],
  [Op.UNSHARE]: [['flags', 'u64']],
  [Op.BECOME_ROOT]: [],
  [Op.TIMENS_OFFSETS]: [['content', 'str']],
  [Op.CLONE_INIT]: [['cgroupDir', 'str']],
  [Op.SETSID]: [],
  [Op.SETHOSTNAME]: [['name', 'str']],
  [Op.SETDOMAINNAME]: [['name', 'str']],
  [Op.ROOTFS_PREPARE]: [
    ['rootfs', 'str'],
    ['propagation', 'u32'],
  ],
  [Op.MOUNT]: [
    ['kind', 'u32'],
    ['recursiveBind', 'u32'],
    ['create', 'u32'],
    ['source', 'str'],
    ['dest', 'str'],
    ['fstype', 'str'],
    ['data', 'str'],
    ['attrSet', 'u32'],
    ['attrClr', 'u32'],
    ['recAttrSet', 'u32'],
    ['recAttrClr', 'u32'],
    ['propagation', 'u32'],
    ['propagationRecursive', 'u32'],
    ['copyUp', 'u32'],
    ['slot', 'u32'],
  ],
  [Op.MKNOD]: [
    ['path', 'str'],
    ['type', 'u32'],
    ['major', 'u32'],
    ['minor', 'u32'],
    ['mode', 'u32'],
    ['uid', 'u32'],
    ['gid', 'u32'],
    ['bindFromHost', 'u32'],
  ],
  [Op.SYMLINK]: [
    ['target', 'str'],
    ['path', 'str'],
  ],
  [Op.MKDIR]: [['path', 'str']],
  [Op.PARENT_HOOKS]: [],
  [Op.HOOK]: [
    ['stage', 'u32'],
    ['path', 'str'],
    ['args', 'strv'],
    ['env', 'strv'],
    ['timeout', 'u32'],
    ['cwd', 'str'],
    ['processEnv', 'u32'],
  ],
  [Op.PIVOT_ROOT]: [['mode', 'u32']],
  [Op.REMOUNT_ROOT_RO]: [],
  [Op.ROOT_PROPAGATION]: [['flags', 'u32']],
  [Op.SYSCTL]: [
    ['key', 'str'],
    ['value', 'str'],
  ],
  [Op.CONSOLE]: [
    ['rows', 'u32'],
    ['cols', 'u32'],
    ['bindDevConsole', 'u32'],
  ],
  [Op.PARENT_RLIMITS]: [],
  [Op.OOM_SCORE_ADJ]: [['value', 'u32']],
  [Op.NO_NEW_PRIVS]: [],
  [Op.USER]: [
    ['uid', 'u32'],
    ['gid', 'u32'],
    ['umask', 'u32'],
    ['groups', 'u32v'],
  ],
  [Op.CHDIR]: [
    ['cwd', 'str'],
    ['stage', 'u32'],
  ],
  [Op.EXEC_PREPARE]: [
    ['name', 'str'],
    ['argv', 'strv'],
    ['env', 'strv'],
  ],
  [Op.WAIT_START]: [],
  [Op.EXEC]: [],
  [Op.SESSION_KEYRING]: [['name', 'str']],
  [Op.CAPS_BOUNDING]: [['keep', 'u64']],
  [Op.CAPS_SET]: [
    ['effective', 'u64'],
    ['permitted', 'u64'],
    ['inheritable', 'u64'],
    ['ambient', 'u64'],
  ],
  [Op.READONLY_PATH]: [['path', 'str']],
  [Op.MASK_PATH]: [['path', 'str']],
  [Op.SECCOMP]: [
    ['flags', 'u32'],
    ['notify', 'u32'],
    ['atExec', 'u32'],
    ['program', 'bytes'],
  ],
  [Op.JOIN_CGROUP]: [
    ['dir', 'str'],
    ['file', 'str'],
  ],
  [Op.HIDE_HOST_FS]: [['path', 'str']],
  [Op.LOOPBACK_UP]: [],
  [Op.SCHEDULER]: [
    ['policy', 'u32'],
    ['flags', 'u64'],
    ['nice', 'u32'],
    ['priority', 'u32'],
    ['runtime', 'u64'],
    ['deadline', 'u64'],
    ['period', 'u64'],
    ['cpusetLimited', 'u32'],
  ],
  [Op.IOPRIO]: [['value', 'u32']],
  [Op.PERSONALITY]: [['persona', 'u32']],
  [Op.MEMPOLICY]: [
    ['mode', 'u32'],
    ['nodemask', 'bytes'],
    ['maxnode', 'u32'],
  ],
  [Op.CPU_AFFINITY]: [
    ['stage', 'u32'],
    ['mask', 'bytes'],
  ],
  [Op.HOME]: [['uid', 'u32']],
  [Op.REMOUNT_RO]: [['path', 'str']],
  [Op.CHROOT]: [['path', 'str']],
  [Op.MOUNT_SOURCE_SERVER]: [],
  [Op.MOUNT_SOURCES_JOIN]: [['userns', 'u32']],
  [Op.MOUNT_SOURCES_DONE]: [],
  [Op.REOPEN_DEV_NULL]: [],
  [Op.IDMAP_PREPARE]: [
    ['slot', 'u32'],
    ['source', 'str'],
    ['recursiveBind', 'u32'],
    ['uidMap', 'str'],
    ['gidMap', 'str'],
    ['attrSet', 'u32'],
    ['attrClr', 'u32'],
    ['recAttrSet', 'u32'],
    ['recAttrClr', 'u32'],
    ['idmapRecursive', 'u32'],
  ],
} as const satisfies Record<Op, Schema>;

/** What each op does, for the generated native/plan-ops.h (the helper's side of the contract). */
export const OP_DOCS: Record<Op, string> = {
  [Op.SETNS]:
    "join the namespace of that type at path (opened before any is joined: once in the container's mount namespace the host's /proc no longer resolves)",
  [Op.UNSHARE_USER]: 'a new user namespace; the parent writes its uid/gid maps meanwhile',
  [Op.UNSHARE]: 'unshare(2) these clone flags',
  [Op.BECOME_ROOT]: 'setresuid/setresgid 0 inside the user namespace',
  [Op.TIMENS_OFFSETS]: 'written to /proc/self/timens_offsets',
  [Op.CLONE_INIT]:
    "fork the container's init (into cgroupDir with CLONE_INTO_CGROUP; '' = none), report its pid, exit; the init runs the ops after it",
  [Op.SETSID]: 'setsid(2)',
  [Op.SETHOSTNAME]: 'sethostname(2)',
  [Op.SETDOMAINNAME]: 'setdomainname(2)',
  [Op.ROOTFS_PREPARE]:
    'open the rootfs (or attach the detached image overlay) and set the propagation of "/" (0: the host\'s mount namespace: "/" left alone, the rootfs bind made private)',
  [Op.MOUNT]:
    'one mount of config.json under the rootfs: kind FS (fsopen/fsmount), BIND (open_tree) or PREPARED (the tree OP_IDMAP_PREPARE built in that slot); create says what to make when dest is missing',
  [Op.MKNOD]: "a device node under the rootfs, or a bind of the host's node where mknod is not allowed (bindFromHost)",
  [Op.SYMLINK]: 'a symlink at path (in the rootfs) to target',
  [Op.MKDIR]: 'process.cwd: mkdir -p in the rootfs (0755), what exists left as it is',
  [Op.PARENT_HOOKS]:
    "the parent runs the prestart and createRuntime hooks; it answers with the state JSON the helper's hooks get",
  [Op.HOOK]:
    "a createContainer or startContainer hook (stage); timeout in seconds (0 = none); cwd '' = ours; processEnv: no env of its own, the process's (OP_EXEC_PREPARE's)",
  [Op.PIVOT_ROOT]:
    "mode: PIVOT pivot_root, MOVE move + chroot (--no-pivot), CHROOT chroot alone (the host's mount namespace: nothing of it may move)",
  [Op.REMOUNT_ROOT_RO]: 'root.readonly: make "/" read-only',
  [Op.ROOT_PROPAGATION]: 'linux.rootfsPropagation: MS_* propagation flags for "/"',
  [Op.SYSCTL]: 'write value to /proc/sys/<key> (key with "/" for ".")',
  [Op.CONSOLE]:
    'a pty: the master goes to the console socket, the slave becomes stdio (and /dev/console, bindDevConsole)',
  [Op.PARENT_RLIMITS]: 'the parent sets process.rlimits with prlimit(2) meanwhile',
  [Op.OOM_SCORE_ADJ]: "value (two's complement) to /proc/self/oom_score_adj",
  [Op.NO_NEW_PRIVS]: 'prctl(PR_SET_NO_NEW_PRIVS)',
  [Op.USER]: 'setgroups, setresgid, setresuid and umask; ids past 2^31-1 refused',
  [Op.CHDIR]: 'process.cwd; stage BEFORE_USER (refused: tried again after the user switch) or AFTER_USER',
  [Op.EXEC_PREPARE]: 'resolve name on the PATH of env; keep argv and env for OP_EXEC',
  [Op.WAIT_START]: 'report ready, block on the exec fifo until `start`',
  [Op.EXEC]: 'close fds, reset signals, load a pending seccomp filter, execve',
  [Op.SESSION_KEYRING]: 'join a fresh session keyring of that name',
  [Op.IDMAP_PREPARE]:
    "a bind's tree, built in the host user namespace before it is attached (idmapped where maps are given; empty maps: a plain bind); with a mount-source server, the server builds it and the helper receives it",
  [Op.CAPS_BOUNDING]:
    'drop every capability not in keep from the bounding set, and keep capabilities across the user switch',
  [Op.CAPS_SET]: 'the other capability sets, after the user switch',
  [Op.READONLY_PATH]: 'bind path read-only over itself (in the container, after pivot_root)',
  [Op.MASK_PATH]: 'cover path with /dev/null or an empty read-only tmpfs (after pivot_root)',
  [Op.SECCOMP]:
    'load program (struct sock_filter[]) with seccomp(2) flags; notify: the listener fd goes to the parent; atExec (never with notify): loaded in OP_EXEC, right before execve',
  [Op.JOIN_CGROUP]:
    'write "0" to dir/file: "tasks" (cgroup v1) moves the one thread there is without the cgroup_threadgroup_rwsem write lock a cgroup.procs write waits an RCU grace period for; "cgroup.procs" (cgroup2) only where the init cannot be cloned into it',
  [Op.HIDE_HOST_FS]: '--no-pivot: detach (or cover) a host proc or sysfs mount before the rootfs moves over "/"',
  [Op.LOOPBACK_UP]: 'bring "lo" up in the network namespace the container made (it starts down; runc brings it up)',
  [Op.SCHEDULER]: "sched_setattr(2); nice in two's complement",
  [Op.IOPRIO]: 'ioprio_set(2): class << 13 | level',
  [Op.PERSONALITY]: 'personality(2)',
  [Op.MEMPOLICY]: 'set_mempolicy(2): mode (with flags), nodemask as unsigned longs',
  [Op.CPU_AFFINITY]:
    'sched_setaffinity(2): stage INITIAL (before the cgroups are joined), FINAL, or RESET to every CPU (an exec that names none; failure ignored)',
  [Op.HOME]:
    "HOME from the container's /etc/passwd for uid, replacing the HOME=/ the plan put last in the next OP_EXEC_PREPARE's env",
  [Op.REMOUNT_RO]:
    'make the mount at path read-only (after pivot_root): a read-only /dev, once its devices, links, mounts and console are in',
  [Op.CHROOT]: "exec into a container without a mount namespace of its own: its init's root (/proc/PID/root)",
  [Op.MOUNT_SOURCE_SERVER]:
    "fork the mount-source server: a container with a user namespace takes its bind sources from inside its own mount namespace, keeping the kernel's locks (init.c)",
  [Op.MOUNT_SOURCES_JOIN]:
    "the server joins the helper's (the container's) mount namespace, and first its user namespace with userns (tsrun is not root)",
  [Op.MOUNT_SOURCES_DONE]: 'the server exits; the helper reaps it',
  [Op.REOPEN_DEV_NULL]:
    "stdio that is the host's /dev/null becomes the container's own (runc's reOpenDevNull): no fd of a host mount stays, which CRIU could not dump",
};

/** The JavaScript value of each field type. */
interface FieldJs {
  u32: number;
  u64: bigint;
  str: string;
  strv: string[];
  u32v: number[];
  bytes: Buffer;
}
type FieldsOf<S extends Schema> = { [F in S[number] as F[0]]: FieldJs[F[1]] };
/** The fields of one op, typed from OP_SCHEMA. */
export type OpFields<K extends Op> = FieldsOf<(typeof OP_SCHEMA)[K]>;
export interface PlanOpOf<K extends Op> {
  op: K;
  fields: OpFields<K>;
}
/** Any op: a union discriminated by `op`, so `o.op === Op.MOUNT` narrows `o.fields`. */
export type PlanOp = { [K in Op]: PlanOpOf<K> }[Op];
export type FieldValue = FieldJs[FieldType];

/** An op with its fields; ops without fields take none. */
export function planOp<K extends Op>(
  code: K,
  ...fields: keyof OpFields<K> extends never ? [] : [OpFields<K>]
): PlanOpOf<K> {
  return { op: code, fields: (fields[0] ?? {}) as OpFields<K> };
}

/** An OP_MOUNT: what every mount names, and the rest zero (or no slot) unless given. */
export function mountOp(
  m: Pick<OpFields<Op.MOUNT>, 'kind' | 'create' | 'source' | 'dest'> & Partial<OpFields<Op.MOUNT>>,
): PlanOpOf<Op.MOUNT> {
  return planOp(Op.MOUNT, {
    recursiveBind: 0,
    fstype: '',
    data: '',
    attrSet: 0,
    attrClr: 0,
    recAttrSet: 0,
    recAttrClr: 0,
    propagation: 0,
    propagationRecursive: 0,
    copyUp: 0,
    slot: NO_SLOT,
    ...m,
  });
}

/** The ops of one kind, typed. */
export function opsOf<K extends Op>(ops: readonly PlanOp[], code: K): Array<PlanOpOf<K>> {
  return ops.filter((o): o is PlanOpOf<K> & PlanOp => o.op === code);
}

/** Growable little-endian writer; strings are NUL-terminated and 4-aligned. */
class Writer {
  private buf = Buffer.alloc(4096);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v >>> 0, this.length);
    this.length += 4;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.length);
    this.length += 8;
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.includes(0)) throw new Error(`string contains a NUL byte: ${JSON.stringify(s)}`);
    const padded = (bytes.length + 1 + 3) & ~3;
    this.u32(bytes.length);
    this.reserve(padded);
    bytes.copy(this.buf, this.length);
    this.buf.fill(0, this.length + bytes.length, this.length + padded);
    this.length += padded;
  }
  bytes(b: Buffer): void {
    const padded = (b.length + 3) & ~3;
    this.u32(b.length);
    this.reserve(padded);
    b.copy(this.buf, this.length);
    this.buf.fill(0, this.length + b.length, this.length + padded);
    this.length += padded;
  }
  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v >>> 0, at);
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

function writeField(w: Writer, op: Op, name: string, type: FieldType, value: FieldValue | undefined): void {
  const where = `${Op[op]}.${name}`;
  switch (type) {
    case 'u32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 32)
        throw new Error(`plan field ${where}: expected a 32-bit integer, got ${String(value)}`);
      return w.u32(value);
    case 'u64':
      if (typeof value !== 'bigint') throw new Error(`plan field ${where}: expected a bigint`);
      return w.u64(value);
    case 'str':
      if (typeof value !== 'string') throw new Error(`plan field ${where}: expected a string`);
      return w.str(value);
    case 'strv':
      if (!Array.isArray(value)) throw new Error(`plan field ${where}: expected a string list`);
      w.u32(value.length);
      for (const s of value as string[]) w.str(s);
      return;
    case 'u32v':
      if (!Array.isArray(value)) throw new Error(`plan field ${where}: expected a number list`);
      w.u32(value.length);
      for (const n of value as number[]) w.u32(n);
      return;
    case 'bytes':
      if (!Buffer.isBuffer(value)) throw new Error(`plan field ${where}: expected a Buffer`);
      return w.bytes(value);
  }
}

export function encodePlan(ops: PlanOp[]): Buffer {
  const w = new Writer();
  w.u32(PLAN_MAGIC);
  w.u32(PLAN_VERSION);
  w.u32(0); // total length, patched below
  w.u32(ops.length);
  for (const { op, fields } of ops) {
    const start = w.length;
    w.u32(op); // u16 code + u16 zero
    w.u32(0); // size, patched below
    const values = fields as Record<string, FieldValue | undefined>;
    for (const [name, type] of OP_SCHEMA[op] as Schema) writeField(w, op, name, type, values[name]);
    w.patchU32(start + 4, w.length - start);
  }
  w.patchU32(8, w.length);
  return w.result();
}

/** The inverse of encodePlan, for tests and debugging. */
export function decodePlan(buf: Buffer): PlanOp[] {
  let at = 0;
  const u32 = (): number => {
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  const str = (): string => {
    const len = u32();
    const s = buf.toString('utf8', at, at + len);
    at += (len + 1 + 3) & ~3;
    return s;
  };
  if (u32() !== PLAN_MAGIC || u32() !== PLAN_VERSION) throw new Error('not a tsrun launch plan');
  if (u32() !== buf.length) throw new Error('launch plan length mismatch');
  const count = u32();
  const ops: PlanOp[] = [];
  for (let i = 0; i < count; i++) {
    const start = at;
    const op = (u32() & 0xffff) as Op;
    const size = u32();
    const fields: Record<string, FieldValue> = {};
    for (const [name, type] of (OP_SCHEMA[op] as Schema | undefined) ?? []) {
      if (type === 'u32') fields[name] = u32();
      else if (type === 'u64') {
        fields[name] = buf.readBigUInt64LE(at);
        at += 8;
      } else if (type === 'str') fields[name] = str();
      else if (type === 'strv') fields[name] = Array.from({ length: u32() }, str);
      else if (type === 'bytes') {
        const len = u32();
        fields[name] = Buffer.from(buf.subarray(at, at + len));
        at += (len + 3) & ~3;
      } else fields[name] = Array.from({ length: u32() }, u32);
    }
    at = start + size;
    ops.push({ op, fields } as PlanOp);
  }
  return ops;
}
