/**
 * The D-Bus wire format (the D-Bus specification, "Message Protocol"):
 * little-endian marshalling of values by their type signature, and whole
 * messages (header fields, body).  Pure, so it is unit-tested byte for
 * byte; client.ts carries the messages over a socket.
 *
 * Values in JavaScript: y n q i u h -> number, x t -> bigint, d -> number,
 * b -> boolean, s o g -> string, a -> array (a dict a{kv} -> array of
 * [key, value] pairs), (...) -> array of its fields, v -> Variant.
 */

export interface Variant {
  signature: string;
  value: DBusValue;
}
export type DBusValue = number | bigint | boolean | string | Variant | DBusValue[];

export const variant = (signature: string, value: DBusValue): Variant => ({ signature, value });

/** Split a signature into its complete types: "sa{sv}(ii)" -> ["s", "a{sv}", "(ii)"]. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < sig.length) {
    const end = completeTypeEnd(sig, i);
    out.push(sig.slice(i, end));
    i = end;
  }
  return out;
}

function completeTypeEnd(sig: string, at: number): number {
  const c = sig[at];
  if (c === undefined) throw new Error(`D-Bus signature "${sig}" ends early`);
  if (c === 'a') return completeTypeEnd(sig, at + 1);
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    let i = at + 1;
    while (sig[i] !== close) {
      if (i >= sig.length) throw new Error(`D-Bus signature "${sig}" has an unclosed ${c}`);
      i = completeTypeEnd(sig, i);
    }
    return i + 1;
  }
  if ('ybnqiuxtdsogvh'.includes(c)) return at + 1;
  throw new Error(`D-Bus signature "${sig}": unknown type code ${c}`);
}

function alignmentOf(type: string): number {
  switch (type[0]) {
    case 'y':
    case 'g':
    case 'v':
      return 1;
    case 'n':
    case 'q':
      return 2;
    case 'x':
    case 't':
    case 'd':
    case '(':
    case '{':
      return 8;
    default:
      return 4; // b i u h s o a
  }
}

/** Marshals values; offsets (and so alignment) count from the start of the message. */
export class Writer {
  private buf = Buffer.alloc(256);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  align(n: number): void {
    const pad = (n - (this.length % n)) % n;
    this.reserve(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  byte(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.length++);
  }

  u32(v: number): void {
    this.align(4);
    this.reserve(4);
    this.buf.writeUInt32LE(v >>> 0, this.length);
    this.length += 4;
  }

  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v >>> 0, at);
  }

  /** One value of one complete type. */
  value(type: string, v: DBusValue): void {
    const c = type[0];
    const fail = (): never => {
      throw new Error(
        `D-Bus ${type}: cannot marshal ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}` : x))}`,
      );
    };
    switch (c) {
      case 'y':
        if (typeof v !== 'number') fail();
        return this.byte(v as number);
      case 'b':
        if (typeof v !== 'boolean') fail();
        return this.u32(v ? 1 : 0);
      case 'n':
      case 'q':
        if (typeof v !== 'number') fail();
        this.align(2);
        this.reserve(2);
        if (c === 'n') this.buf.writeInt16LE(v as number, this.length);
        else this.buf.writeUInt16LE(v as number, this.length);
        this.length += 2;
        return;
      case 'i':
      case 'u':
      case 'h':
        if (typeof v !== 'number') fail();
        this.align(4);
        this.reserve(4);
        if (c === 'i') this.buf.writeInt32LE(v as number, this.length);
        else this.buf.writeUInt32LE(v as number, this.length);
        this.length += 4;
        return;
      case 'x':
      case 't':
        if (typeof v !== 'bigint') fail();
        this.align(8);
        this.reserve(8);
        if (c === 'x') this.buf.writeBigInt64LE(v as bigint, this.length);
        else this.buf.writeBigUInt64LE(v as bigint, this.length);
        this.length += 8;
        return;
      case 'd':
        if (typeof v !== 'number') fail();
        this.align(8);
        this.reserve(8);
        this.buf.writeDoubleLE(v as number, this.length);
        this.length += 8;
        return;
      case 's':
      case 'o': {
        if (typeof v !== 'string') fail();
        const bytes = Buffer.from(v as string, 'utf8');
        if (bytes.includes(0)) throw new Error(`D-Bus ${type}: a NUL byte in ${JSON.stringify(v)}`);
        this.u32(bytes.length);
        this.reserve(bytes.length + 1);
        bytes.copy(this.buf, this.length);
        this.length += bytes.length;
        this.buf.writeUInt8(0, this.length++);
        return;
      }
      case 'g': {
        if (typeof v !== 'string' || Buffer.byteLength(v as string) > 255) fail();
        this.byte((v as string).length);
        this.reserve((v as string).length + 1);
        this.buf.write(v as string, this.length, 'latin1');
        this.length += (v as string).length;
        this.buf.writeUInt8(0, this.length++);
        return;
      }
      case 'v': {
        const inner = v as Variant;
        if (typeof inner !== 'object' || inner === null || Array.isArray(inner) || typeof inner.signature !== 'string')
          fail();
        if (splitSignature(inner.signature).length !== 1)
          throw new Error(`D-Bus variant: "${inner.signature}" is not one complete type`);
        this.value('g', inner.signature);
        return this.value(inner.signature, inner.value);
      }
      case 'a': {
        if (!Array.isArray(v)) fail();
        const element = type.slice(1);
        this.u32(0); // the length, patched below
        const lengthAt = this.length - 4;
        this.align(alignmentOf(element));
        const start = this.length;
        for (const item of v as DBusValue[]) this.value(element, item);
        this.patchU32(lengthAt, this.length - start);
        return;
      }
      case '(':
      case '{': {
        if (!Array.isArray(v)) fail();
        const fields = splitSignature(type.slice(1, -1));
        if ((v as DBusValue[]).length !== fields.length)
          throw new Error(`D-Bus ${type}: ${fields.length} fields, ${(v as DBusValue[]).length} given`);
        this.align(8);
        fields.forEach((f, i) => this.value(f, (v as DBusValue[])[i]));
        return;
      }
      default:
        throw new Error(`D-Bus: unknown type ${type}`);
    }
  }

  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

/** Unmarshals values from a message; offsets count from its start. */
export class Reader {
  constructor(
    private readonly buf: Buffer,
    public at = 0,
    private readonly end = buf.length,
  ) {}

  private need(n: number): void {
    if (this.at + n > this.end) throw new Error('D-Bus message truncated');
  }

  align(n: number): void {
    this.at += (n - (this.at % n)) % n;
  }

  value(type: string): DBusValue {
    const c = type[0];
    switch (c) {
      case 'y':
        this.need(1);
        return this.buf.readUInt8(this.at++);
      case 'b':
      case 'i':
      case 'u':
      case 'h': {
        this.align(4);
        this.need(4);
        const v = c === 'i' ? this.buf.readInt32LE(this.at) : this.buf.readUInt32LE(this.at);
        this.at += 4;
        return c === 'b' ? v !== 0 : v;
      }
      case 'n':
      case 'q': {
        this.align(2);
        this.need(2);
        const v = c === 'n' ? this.buf.readInt16LE(this.at) : this.buf.readUInt16LE(this.at);
        this.at += 2;
        return v;
      }
      case 'x':
      case 't':
      case 'd': {
        this.align(8);
        this.need(8);
        const v =
          c === 'x'
            ? this.buf.readBigInt64LE(this.at)
            : c === 't'
              ? this.buf.readBigUInt64LE(this.at)
              : this.buf.readDoubleLE(this.at);
        this.at += 8;
        return v;
      }
      case 's':
      case 'o': {
        const len = this.value('u') as number;
        this.need(len + 1);
        const s = this.buf.toString('utf8', this.at, this.at + len);
        this.at += len + 1;
        return s;
      }
      case 'g': {
        const len = this.value('y') as number;
        this.need(len + 1);
        const s = this.buf.toString('latin1', this.at, this.at + len);
        this.at += len + 1;
        return s;
      }
      case 'v': {
        const signature = this.value('g') as string;
        if (splitSignature(signature).length !== 1) throw new Error(`D-Bus variant with signature "${signature}"`);
        return { signature, value: this.value(signature) };
      }
      case 'a': {
        const len = this.value('u') as number;
        const element = type.slice(1);
        this.align(alignmentOf(element));
        const stop = this.at + len;
        if (stop > this.end) throw new Error('D-Bus array runs past the message');
        const out: DBusValue[] = [];
        while (this.at < stop) out.push(this.value(element));
        return out;
      }
      case '(':
      case '{': {
        this.align(8);
        return splitSignature(type.slice(1, -1)).map((f) => this.value(f));
      }
      default:
        throw new Error(`D-Bus: unknown type ${type}`);
    }
  }
}

export const MessageType = { METHOD_CALL: 1, METHOD_RETURN: 2, ERROR: 3, SIGNAL: 4 } as const;
const Field = {
  PATH: 1,
  INTERFACE: 2,
  MEMBER: 3,
  ERROR_NAME: 4,
  REPLY_SERIAL: 5,
  DESTINATION: 6,
  SENDER: 7,
  SIGNATURE: 8,
} as const;
const FIELD_TYPES: Record<number, string> = { 1: 'o', 2: 's', 3: 's', 4: 's', 5: 'u', 6: 's', 7: 's', 8: 'g', 9: 'u' };

export interface Message {
  type: number;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature: string;
  body: DBusValue[];
}

/** A whole message: header, fields, and the body marshalled by `signature`. */
export function encodeMessage(m: Omit<Message, 'flags'> & { flags?: number }): Buffer {
  const body = new Writer();
  const types = splitSignature(m.signature);
  if (types.length !== m.body.length)
    throw new Error(
      `D-Bus ${m.member ?? 'message'}: signature "${m.signature}" has ${types.length} values, ${m.body.length} given`,
    );
  types.forEach((t, i) => body.value(t, m.body[i]));
  const fields: Array<[number, Variant]> = [];
  const add = (code: number, value: string | number | undefined): void => {
    if (value !== undefined) fields.push([code, variant(FIELD_TYPES[code], value)]);
  };
  add(Field.PATH, m.path);
  add(Field.INTERFACE, m.interface);
  add(Field.MEMBER, m.member);
  add(Field.ERROR_NAME, m.errorName);
  add(Field.REPLY_SERIAL, m.replySerial);
  add(Field.DESTINATION, m.destination);
  add(Field.SENDER, m.sender);
  if (m.signature) add(Field.SIGNATURE, m.signature);
  const w = new Writer();
  w.byte('l'.charCodeAt(0));
  w.byte(m.type);
  w.byte(m.flags ?? 0);
  w.byte(1);
  w.u32(body.length);
  w.u32(m.serial);
  w.value('a(yv)', fields);
  w.align(8);
  const bodyBytes = body.result();
  return Buffer.concat([w.result(), bodyBytes]);
}

/** The length of the message at the start of buf, or 0 when its header is not all there yet. */
export function messageLength(buf: Buffer): number {
  if (buf.length < 16) return 0;
  if (buf[0] !== 'l'.charCodeAt(0)) throw new Error('D-Bus: only little-endian messages are read');
  const bodyLength = buf.readUInt32LE(4);
  const fieldsLength = buf.readUInt32LE(12);
  const headerEnd = 16 + fieldsLength;
  return headerEnd + ((8 - (headerEnd % 8)) % 8) + bodyLength;
}

export function decodeMessage(buf: Buffer): Message {
  const total = messageLength(buf);
  if (!total || total > buf.length) throw new Error('D-Bus message truncated');
  const r = new Reader(buf, 12, total);
  const fields = r.value('a(yv)') as Array<[number, Variant]>;
  r.align(8);
  const get = (code: number): DBusValue | undefined => fields.find(([c]) => c === code)?.[1].value;
  const signature = (get(Field.SIGNATURE) as string | undefined) ?? '';
  const body = splitSignature(signature).map((t) => r.value(t));
  return {
    type: buf[1],
    flags: buf[2],
    serial: buf.readUInt32LE(8),
    path: get(Field.PATH) as string | undefined,
    interface: get(Field.INTERFACE) as string | undefined,
    member: get(Field.MEMBER) as string | undefined,
    errorName: get(Field.ERROR_NAME) as string | undefined,
    replySerial: get(Field.REPLY_SERIAL) as number | undefined,
    destination: get(Field.DESTINATION) as string | undefined,
    sender: get(Field.SENDER) as string | undefined,
    signature,
    body,
  };
}
