/**
 * events --stats in runc's JSON (src/lib/cgroup/stats.ts): 64-bit counters
 * exact, Go's omitempty, cpuset lists, blkio lines.
 */
import t from 'tap';
import {
  blkioEntries,
  keyValues,
  listOf,
  memoryEntry,
  omitEmpty,
  sortedMap,
  statsJson,
} from '../../src/lib/cgroup/stats';

t.test('64-bit counters print digit for digit', async (t) => {
  t.equal(
    statsJson({ limit: 9223372036854771712n, max: 0xffffffffffffffffn, small: 3n, text: 'x' }),
    '{"limit":9223372036854771712,"max":18446744073709551615,"small":3,"text":"x"}',
  );
  t.equal(statsJson({ list: [1n, 2n], nested: { a: -1n } }), '{"list":[1,2],"nested":{"a":-1}}');
  t.same(keyValues('cache 9223372036854771712\nbad x\nswap 0\n'), { cache: 9223372036854771712n, swap: 0n });
});

t.test("Go's omitempty, and the fields runc keeps", async (t) => {
  t.same(omitEmpty({ a: 0n, b: 1n, c: [], d: [1], e: undefined, f: '' }), { b: 1n, d: [1] });
  t.same(
    memoryEntry({ limit: 5n, usage: 0n, max: 0n, failcnt: 0n }),
    { limit: 5n, failcnt: 0n },
    'limit and failcnt always',
  );
  t.same(Object.keys(sortedMap({ b: 1, a: 2, C: 3 })), ['C', 'a', 'b']);
});

t.test('cpuset lists and blkio lines', async (t) => {
  t.same(listOf('0-2,5\n'), [0, 1, 2, 5]);
  t.same(listOf(''), []);
  t.same(
    blkioEntries('254:0 Read 24576\n254:0 Write 0\n8:16 Total 7\nTotal 24583\n'),
    [
      { major: 254n, op: 'Read', value: 24576n },
      { major: 254n, op: 'Write' },
      { major: 8n, minor: 16n, op: 'Total', value: 7n },
    ],
    'minor and value left out when zero; the closing total is not a device',
  );
});
