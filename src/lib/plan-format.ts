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
}

export const MountKind = { FS: 0, BIND: 1, PREPARED: 2 } as const;
/** The slot of a mount that is not prepared by OP_IDMAP_PREPARE. */
export const NO_SLOT = 0xffffffff;
export const CreateKind = { DIR: 0, FILE: 1, PLAIN_DIR: 2 } as const;
export const HookStage = { CREATE_CONTAINER: 3, START_CONTAINER: 4 } as const;
/** OP_CPU_AFFINITY: process.execCPUAffinity's two stages, and the reset of an exec that names neither. */
export const AffinityStage = { INITIAL: 0, FINAL: 1, RESET: 2 } as const;
/** OP_PIVOT_ROOT: pivot_root; --no-pivot's move and chroot; a chroot alone (no mount namespace of the container's own). */
export const PivotMode = { PIVOT: 0, MOVE: 1, CHROOT: 2 } as const;
/** OP_CHDIR: the try before the user switch, and the one after it (only when the first was refused). */
export const ChdirStage = { BEFORE_USER: 0, AFTER_USER: 1 } as const;

type FieldType = 'u32' | 'u64' | 'str' | 'strv' | 'u32v' | 'bytes';
type Schema = ReadonlyArray<readonly [name: string, type: FieldType]>;

/** Field order per op; must match the comments in native/plan.h. */
export const OP_SCHEMA: Record<Op, Schema> = {
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
  [Op.PIVOT_ROOT]: [['noPivot', 'u32']],
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
  [Op.MOUNT_SOURCES_JOIN]: [],
  [Op.MOUNT_SOURCES_DONE]: [],
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
};

export type FieldValue = number | bigint | string | string[] | number[] | Buffer;
export interface PlanOp {
  op: Op;
  fields: Record<string, FieldValue>;
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
    for (const [name, type] of OP_SCHEMA[op]) writeField(w, op, name, type, fields[name]);
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
    for (const [name, type] of OP_SCHEMA[op] ?? []) {
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
    ops.push({ op, fields });
  }
  return ops;
}
