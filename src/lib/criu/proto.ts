/**
 * The messages of CRIU's service mode (criu swrk), in protobuf's proto2
 * wire format, for the few fields tsrun sends and reads.  The field
 * numbers are CRIU's rpc.proto (MIT; Debian ships it as
 * /usr/include/criu/rpc.proto): a message is one SOCK_SEQPACKET packet,
 * a field a tag (number << 3 | wire type) and its value, a varint (ints,
 * bools, enums) or a length and bytes (strings, nested messages);
 * repeated fields are simply repeated.  Written by hand rather than with
 * a protobuf library: two messages out, one in, and nothing to load at
 * start-up for the verbs that never talk to CRIU.
 */

export enum CriuRequestType {
  DUMP = 1,
  RESTORE = 2,
  CHECK = 3,
  PRE_DUMP = 4,
  NOTIFY = 6,
  FEATURE_CHECK = 9,
  VERSION = 10,
}

/** criu_cg_mode: what CRIU does with the cgroups it finds (--manage-cgroups-mode). */
export enum CgroupMode {
  IGNORE = 0,
  CG_NONE = 1,
  PROPS = 2,
  SOFT = 3,
  FULL = 4,
  STRICT = 5,
  DEFAULT = 6,
}

export interface ExtMount {
  key: string;
  val: string;
}

export interface InheritFd {
  key: string;
  fd: number;
}

export interface JoinNamespace {
  ns: string;
  nsFile: string;
}

export interface CgroupRoot {
  ctrl?: string;
  path: string;
}

/** criu_opts: the fields tsrun sets. */
export interface CriuOpts {
  imagesDirFd: number;
  pid?: number;
  leaveRunning?: boolean;
  extUnixSk?: boolean;
  tcpEstablished?: boolean;
  evasiveDevices?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  logLevel?: number;
  logFile?: string;
  /** --page-server: where a dump's pages go instead of the image directory. */
  ps?: { address: string; port: number };
  notifyScripts?: boolean;
  root?: string;
  parentImg?: string;
  trackMem?: boolean;
  autoDedup?: boolean;
  workDirFd?: number;
  linkRemap?: boolean;
  extMnt?: ExtMount[];
  manageCgroups?: boolean;
  cgRoot?: CgroupRoot[];
  rstSibling?: boolean;
  inheritFd?: InheritFd[];
  manageCgroupsMode?: CgroupMode;
  external?: string[];
  emptyNs?: number;
  joinNs?: JoinNamespace[];
  freezeCgroup?: string;
  tcpSkipInFlight?: boolean;
  lazyPages?: boolean;
  /** CRIU before 3.15: where it writes \0 once lazy pages are ready (an fd of ours, as the directories are). */
  statusFd?: number;
  orphanPtsMaster?: boolean;
  configFile?: string;
  lsmProfile?: string;
  lsmMountContext?: string;
}

export interface CriuFeatures {
  memTrack?: boolean;
  lazyPages?: boolean;
}

export interface CriuRequest {
  type: CriuRequestType;
  opts?: CriuOpts;
  notifySuccess?: boolean;
  features?: CriuFeatures;
}

export interface CriuVersion {
  major: number;
  minor: number;
  sublevel?: number;
  gitid?: string;
}

export interface CriuResponse {
  type: number;
  success: boolean;
  /** restore: the restored tree's root pid. */
  restorePid?: number;
  /** A notification: the action's name ("post-restore"), and a pid for some. */
  notify?: { script: string; pid?: number };
  crErrno?: number;
  crErrmsg?: string;
  version?: CriuVersion;
  features?: CriuFeatures;
}

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

/** One message being written, field by field. */
class Writer {
  private readonly parts: Buffer[] = [];

  private varint(value: bigint): void {
    // int32 fields take a negative value as its 64-bit two's complement (ten bytes).
    let v = BigInt.asUintN(64, value);
    const bytes: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      bytes.push(byte);
    } while (v);
    this.parts.push(Buffer.from(bytes));
  }

  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int(field: number, value: number | undefined): this {
    if (value === undefined) return this;
    if (!Number.isInteger(value)) throw new Error(`criu message field ${field}: ${value} is not an integer`);
    this.tag(field, VARINT);
    this.varint(BigInt(value));
    return this;
  }

  bool(field: number, value: boolean | undefined): this {
    return value === undefined ? this : this.int(field, value ? 1 : 0);
  }

  bytes(field: number, value: Buffer | undefined): this {
    if (value === undefined) return this;
    this.tag(field, BYTES);
    this.varint(BigInt(value.length));
    this.parts.push(value);
    return this;
  }

  string(field: number, value: string | undefined): this {
    return value === undefined ? this : this.bytes(field, Buffer.from(value, 'utf8'));
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function encodeOpts(o: CriuOpts): Buffer {
  const w = new Writer()
    .int(1, o.imagesDirFd)
    .int(2, o.pid)
    .bool(3, o.leaveRunning)
    .bool(4, o.extUnixSk)
    .bool(5, o.tcpEstablished)
    .bool(6, o.evasiveDevices)
    .bool(7, o.shellJob)
    .bool(8, o.fileLocks)
    .int(9, o.logLevel)
    .string(10, o.logFile)
    .bytes(11, o.ps && new Writer().string(1, o.ps.address).int(2, o.ps.port).done())
    .bool(12, o.notifyScripts)
    .string(13, o.root)
    .string(14, o.parentImg)
    .bool(15, o.trackMem)
    .bool(16, o.autoDedup)
    .int(17, o.workDirFd)
    .bool(18, o.linkRemap);
  for (const m of o.extMnt ?? []) w.bytes(23, new Writer().string(1, m.key).string(2, m.val).done());
  w.bool(24, o.manageCgroups);
  for (const r of o.cgRoot ?? []) w.bytes(25, new Writer().string(1, r.ctrl).string(2, r.path).done());
  w.bool(26, o.rstSibling);
  for (const f of o.inheritFd ?? []) w.bytes(27, new Writer().string(1, f.key).int(2, f.fd).done());
  w.int(34, o.manageCgroupsMode);
  for (const e of o.external ?? []) w.string(37, e);
  w.int(38, o.emptyNs);
  for (const j of o.joinNs ?? []) w.bytes(39, new Writer().string(1, j.ns).string(2, j.nsFile).done());
  return w
    .string(44, o.freezeCgroup)
    .bool(46, o.tcpSkipInFlight)
    .bool(48, o.lazyPages)
    .int(49, o.statusFd)
    .bool(50, o.orphanPtsMaster)
    .string(51, o.configFile)
    .string(53, o.lsmProfile)
    .string(63, o.lsmMountContext)
    .done();
}

function encodeFeatures(f: CriuFeatures): Buffer {
  return new Writer().bool(1, f.memTrack).bool(2, f.lazyPages).done();
}

export function encodeRequest(req: CriuRequest): Buffer {
  return new Writer()
    .int(1, req.type)
    .bytes(2, req.opts && encodeOpts(req.opts))
    .bool(3, req.notifySuccess)
    .bytes(5, req.features && encodeFeatures(req.features))
    .done();
}

/** A decoded message: each field number's values in order (varints as bigint, the rest as bytes). */
type Fields = Map<number, Array<bigint | Buffer>>;

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let value = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos >= buf.length) throw new Error('criu message: a varint runs past the end');
    const byte = buf[pos++];
    value |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [value, pos];
  }
  throw new Error('criu message: a varint longer than ten bytes');
}

function decodeFields(buf: Buffer): Fields {
  const fields: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    let key: bigint;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value: bigint | Buffer;
    if (wire === VARINT) {
      [value, pos] = readVarint(buf, pos);
    } else if (wire === BYTES) {
      let len: bigint;
      [len, pos] = readVarint(buf, pos);
      if (BigInt(pos) + len > BigInt(buf.length)) throw new Error(`criu message: field ${field} runs past the end`);
      value = buf.subarray(pos, pos + Number(len));
      pos += Number(len);
    } else if (wire === FIXED64 || wire === FIXED32) {
      const size = wire === FIXED64 ? 8 : 4;
      if (pos + size > buf.length) throw new Error(`criu message: field ${field} runs past the end`);
      value = buf.subarray(pos, pos + size);
      pos += size;
    } else {
      throw new Error(`criu message: field ${field} has wire type ${wire}`);
    }
    const list = fields.get(field);
    if (list) list.push(value);
    else fields.set(field, [value]);
  }
  return fields;
}

function last(fields: Fields, field: number): bigint | Buffer | undefined {
  const list = fields.get(field);
  return list?.[list.length - 1];
}

function int32Of(fields: Fields, field: number): number | undefined {
  const v = last(fields, field);
  return typeof v === 'bigint' ? Number(BigInt.asIntN(32, v)) : undefined;
}

function boolOf(fields: Fields, field: number): boolean | undefined {
  const v = last(fields, field);
  return typeof v === 'bigint' ? v !== 0n : undefined;
}

function stringOf(fields: Fields, field: number): string | undefined {
  const v = last(fields, field);
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}

function messageOf(fields: Fields, field: number): Fields | undefined {
  const v = last(fields, field);
  return Buffer.isBuffer(v) ? decodeFields(v) : undefined;
}

export function decodeResponse(buf: Buffer): CriuResponse {
  const f = decodeFields(buf);
  const type = int32Of(f, 1);
  const success = boolOf(f, 2);
  if (type === undefined || success === undefined)
    throw new Error('criu message: a response without its type or success');
  const resp: CriuResponse = { type, success };
  const restore = messageOf(f, 4);
  if (restore) resp.restorePid = int32Of(restore, 1);
  const notify = messageOf(f, 5);
  if (notify) resp.notify = { script: stringOf(notify, 1) ?? '', pid: int32Of(notify, 2) };
  resp.crErrno = int32Of(f, 7);
  const features = messageOf(f, 8);
  if (features) resp.features = { memTrack: boolOf(features, 1), lazyPages: boolOf(features, 2) };
  resp.crErrmsg = stringOf(f, 9);
  const version = messageOf(f, 10);
  if (version) {
    const major = int32Of(version, 1);
    const minor = int32Of(version, 2);
    if (major === undefined || minor === undefined) throw new Error('criu message: a version without its numbers');
    resp.version = { major, minor, sublevel: int32Of(version, 4), gitid: stringOf(version, 3) };
  }
  return resp;
}

/**
 * A version as one number, go-criu's way: major*10000 + minor*100 +
 * sublevel, and a build from git between releases counts as the next
 * minor (it has everything of the one it follows).
 */
export function versionNumber(v: CriuVersion): number {
  const n = v.major * 10000 + v.minor * 100 + (v.sublevel ?? 0);
  return v.gitid ? (v.major * 100 + v.minor + 1) * 100 : n;
}
