/**
 * GVariant's text format (GLib's "GVariant Text Format"), the part of it a
 * unit property is written in: runc reads the value of an
 * `org.systemd.property.NAME` annotation this way (godbus's ParseVariant),
 * so a config that works there works here.  Taken: booleans, numbers
 * (int32 or double when untyped), strings in '…' or "…", the type keywords
 * (`uint64 5`, `objectpath '/x'`, …), `@TYPE VALUE`, and arrays of those;
 * anything else (dictionaries, tuples, maybes, bytestrings) is an error
 * that says so, never a guess.
 */
import { type DBusValue, type Variant, variant } from './wire';

/** A type keyword and the D-Bus type it writes. */
const KEYWORDS: Record<string, string> = {
  boolean: 'b',
  byte: 'y',
  int16: 'n',
  uint16: 'q',
  int32: 'i',
  uint32: 'u',
  int64: 'x',
  uint64: 't',
  handle: 'h',
  double: 'd',
  string: 's',
  objectpath: 'o',
  signature: 'g',
};

const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  y: [0n, 255n],
  n: [-32768n, 32767n],
  q: [0n, 65535n],
  i: [-2147483648n, 2147483647n],
  h: [-2147483648n, 2147483647n],
  u: [0n, 4294967295n],
  x: [-(2n ** 63n), 2n ** 63n - 1n],
  t: [0n, 2n ** 64n - 1n],
};

/** A parsed value before its type is settled: a bare number takes its array's type. */
type Parsed =
  | { kind: 'typed'; value: Variant }
  | { kind: 'number'; text: string; float: boolean }
  | { kind: 'array'; items: Parsed[] };

class Reader {
  at = 0;
  constructor(readonly text: string) {}

  fail(why: string): never {
    throw new Error(`${why} at offset ${this.at} of ${JSON.stringify(this.text)}`);
  }

  skipSpace(): void {
    while (/\s/.test(this.text[this.at] ?? '')) this.at++;
  }

  peek(): string {
    this.skipSpace();
    return this.text[this.at] ?? '';
  }

  word(): string {
    this.skipSpace();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.at));
    return m ? m[0] : '';
  }
}

function parseValue(r: Reader): Parsed {
  const c = r.peek();
  if (c === '@') {
    r.at++;
    const type = /^[a-z{}()]+/.exec(r.text.slice(r.at))?.[0] ?? r.fail('a type after "@"');
    r.at += type.length;
    return { kind: 'typed', value: settle(parseValue(r), type, r) };
  }
  if (c === '[') return parseArray(r);
  if (c === "'" || c === '"') return { kind: 'typed', value: variant('s', parseString(r)) };
  const word = r.word();
  if (word === 'true' || word === 'false') {
    r.at += word.length;
    return { kind: 'typed', value: variant('b', word === 'true') };
  }
  if (word in KEYWORDS) {
    r.at += word.length;
    return { kind: 'typed', value: settle(parseValue(r), KEYWORDS[word], r) };
  }
  const num = /^[-+]?(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|inf|nan)/.exec(r.text.slice(r.at));
  if (num) {
    r.at += num[0].length;
    return { kind: 'number', text: num[0], float: !/^[-+]?(0x[0-9a-fA-F]+|\d+)$/.test(num[0]) };
  }
  if (word) r.fail(`"${word}" is not a value this reader takes (booleans, numbers, strings, typed values, arrays)`);
  return r.fail(c ? `unexpected "${c}"` : 'a value is missing');
}

function parseArray(r: Reader): Parsed {
  r.at++; // [
  const items: Parsed[] = [];
  if (r.peek() === ']') {
    r.at++;
    return { kind: 'array', items };
  }
  for (;;) {
    items.push(parseValue(r));
    const c = r.peek();
    r.at++;
    if (c === ']') return { kind: 'array', items };
    if (c !== ',') r.fail(c ? `"," or "]" expected, not "${c}"` : 'the array is not closed');
  }
}

function parseString(r: Reader): string {
  const quote = r.text[r.at++];
  let out = '';
  for (;;) {
    const c = r.text[r.at++];
    if (c === undefined) r.fail('the string is not closed');
    if (c === quote) return out;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = r.text[r.at++];
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', a: '\x07' };
    if (e === 'u' || e === 'U') {
      const len = e === 'u' ? 4 : 8;
      const hex = r.text.slice(r.at, r.at + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) r.fail(`\\${e} wants ${len} hex digits`);
      out += String.fromCodePoint(parseInt(hex, 16));
      r.at += len;
    } else if (e !== undefined && e in simple) out += simple[e];
    else if (e !== undefined)
      out += e; // \\ \' \" and any other character as itself
    else r.fail('the string is not closed');
  }
}

/** The element type an array's items agree on. */
function elementType(items: Parsed[], r: Reader): string {
  const typed = items.map((i) => typeOf(i, r)).filter((t): t is string => t !== undefined);
  if (typed.length) {
    if (typed.some((t) => t !== typed[0])) r.fail(`the array mixes types ${[...new Set(typed)].join(' and ')}`);
    return typed[0];
  }
  if (items.length === 0) return r.fail('an empty array needs its type: @as [] for one of strings');
  return items.some((i) => i.kind === 'number' && i.float) ? 'd' : 'i';
}

function typeOf(p: Parsed, r: Reader): string | undefined {
  if (p.kind === 'typed') return p.value.signature;
  if (p.kind === 'array')
    return p.items.length && p.items.every((i) => i.kind === 'number') ? undefined : `a${elementType(p.items, r)}`;
  return undefined;
}

/** Give a parsed value the type `type` (a keyword's, an @'s, or its array's). */
function settle(p: Parsed, type: string, r: Reader): Variant {
  if (p.kind === 'typed') {
    // A quoted string is a string, an object path or a signature, as the keyword before it says.
    if (p.value.signature === 's' && (type === 'o' || type === 'g')) return variant(type, p.value.value);
    if (p.value.signature !== type) r.fail(`a ${p.value.signature} value where ${type} is wanted`);
    return p.value;
  }
  if (p.kind === 'array') {
    if (type[0] !== 'a') r.fail(`an array where ${type} is wanted`);
    const element = type.slice(1);
    return variant(
      type,
      p.items.map((i) => settle(i, element, r).value),
    );
  }
  return variant(type, numberAs(p.text, p.float, type, r));
}

function numberAs(text: string, float: boolean, type: string, r: Reader): DBusValue {
  if (type === 'd') return Number(text.replace(/^([-+]?)inf$/, '$1Infinity').replace(/^[-+]?nan$/, 'NaN'));
  const range = INTEGER_RANGES[type];
  if (!range) return r.fail(`a number where ${type} is wanted`);
  if (float) return r.fail(`${text} is not an integer, which ${type} wants`);
  const [, sign, hex, digits] = /^([-+]?)(0x)?(.*)$/.exec(text)!;
  const magnitude = BigInt(hex ? `0x${digits}` : digits);
  const n = sign === '-' ? -magnitude : magnitude;
  if (n < range[0] || n > range[1]) r.fail(`${text} is out of range for ${type}`);
  return type === 'x' || type === 't' ? n : Number(n);
}

/** A value in GVariant text format as a D-Bus variant; throws naming what it could not read. */
export function parseGVariantText(text: string): Variant {
  const r = new Reader(text);
  const p = parseValue(r);
  if (r.peek() !== '') r.fail('more after the value');
  if (p.kind === 'typed') return p.value;
  if (p.kind === 'number') return variant(p.float ? 'd' : 'i', numberAs(p.text, p.float, p.float ? 'd' : 'i', r));
  const type = typeOf(p, r) ?? `a${elementType(p.items, r)}`;
  return settle(p, type, r);
}
