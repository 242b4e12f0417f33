/**
 * `events --stats` in runc's shape (runc's types/events.go): its field
 * names, its omitempty rules (zero counters left out, a few kept), and
 * 64-bit counters printed exactly.  Counters are read as bigints: a
 * double would print 9223372036854771712 (v1's "no limit") as
 * 9223372036854772000.
 */

export type U64 = bigint;

/** "key value" lines (memory.stat, cpu.stat, ...) as bigints. */
export function keyValues(text: string | undefined): Record<string, U64> {
  const out: Record<string, U64> = {};
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) out[key] = BigInt(value);
  }
  return out;
}

/** One counter file's text; "max" (cgroup2's "no limit") reads as 2^64-1, as runc reads it; unreadable: 0. */
export function u64Of(text: string | undefined): U64 {
  const t = (text ?? '').trim();
  if (t === 'max') return 0xffffffffffffffffn;
  return /^-?\d+$/.test(t) ? BigInt(t) : 0n;
}

/** "0-3,7" as [0, 1, 2, 3, 7] (cpuset lists). */
export function listOf(text: string | undefined): number[] {
  const out: number[] = [];
  for (const part of (text ?? '').trim().split(',').filter(Boolean)) {
    const [a, b = a] = part.split('-').map(Number);
    for (let n = a; n <= b; n++) out.push(n);
  }
  return out;
}

/** Drop the keys whose value is zero, empty or absent (Go's omitempty). */
export function omitEmpty<T extends Record<string, unknown>>(object: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined || value === 0n || value === 0 || value === '') continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[key] = value;
  }
  return out as Partial<T>;
}

/** A memory entry: limit and failcnt always, usage and max when not zero. */
export function memoryEntry(e: { limit: U64; usage: U64; max: U64; failcnt: U64 }): Record<string, U64> {
  return { limit: e.limit, ...omitEmpty({ usage: e.usage, max: e.max }), failcnt: e.failcnt };
}

/** Keys sorted, as Go prints a map. */
export function sortedMap<V>(map: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Blkio entries ("major:minor op value" lines), as runc reads them: minor and value dropped when zero. */
export function blkioEntries(text: string | undefined): Array<Record<string, unknown>> {
  return (text ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && /^\d+:\d+$/.test(f[0]))
    .map(([dev, op, value]) => {
      const [major, minor] = dev.split(':').map((n) => BigInt(n));
      return omitEmpty({ major, minor, op, value: BigInt(value) });
    });
}

/** JSON with bigints as exact digits. */
export function statsJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? `\u0000${v}\u0000` : v)).replace(
    /"\\u0000(-?\d+)\\u0000"/g,
    '$1',
  );
}
