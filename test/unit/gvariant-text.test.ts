/**
 * GVariant text values (src/lib/dbus/gvariant-text.ts), as runc's
 * org.systemd.property.* annotations carry them: what godbus's
 * ParseVariant reads them as, and clear errors for what is not taken.
 */
import t from 'tap';
import { parseGVariantText } from '../../src/lib/dbus/gvariant-text';
import { variant } from '../../src/lib/dbus/wire';

t.test('scalars: typed, bare and quoted', async (t) => {
  const cases: Array<[string, ReturnType<typeof variant>]> = [
    ['uint64 123456789', variant('t', 123456789n)],
    ['uint64 18446744073709551615', variant('t', 18446744073709551615n)],
    ['int64 -5', variant('x', -5n)],
    ['uint32 0x10', variant('u', 16)],
    ['int32 -0x10', variant('i', -16)],
    ['byte 255', variant('y', 255)],
    ['int16 -32768', variant('n', -32768)],
    ['uint16 65535', variant('q', 65535)],
    ['double 1.5', variant('d', 1.5)],
    ['double 2', variant('d', 2)],
    ['42', variant('i', 42)],
    ['-3', variant('i', -3)],
    ['2.5', variant('d', 2.5)],
    ['1e3', variant('d', 1000)],
    ['true', variant('b', true)],
    ['  false ', variant('b', false)],
    ["'inactive-or-failed'", variant('s', 'inactive-or-failed')],
    ['"double \\"quoted\\""', variant('s', 'double "quoted"')],
    ["'it\\'s \\u00e9\\n'", variant('s', "it's é\n")],
    ["string 'x'", variant('s', 'x')],
    ["objectpath '/org/freedesktop/systemd1'", variant('o', '/org/freedesktop/systemd1')],
    ['@t 7', variant('t', 7n)],
    ['boolean true', variant('b', true)],
  ];
  for (const [text, want] of cases) t.same(parseGVariantText(text), want, text);
});

t.test('arrays: element types agree, bare numbers take the array type', async (t) => {
  t.same(parseGVariantText("['a.service', 'b.service']"), variant('as', ['a.service', 'b.service']));
  t.same(parseGVariantText('[1, 2, 3]'), variant('ai', [1, 2, 3]));
  t.same(parseGVariantText('[uint64 1, 2]'), variant('at', [1n, 2n]));
  t.same(parseGVariantText('[1, 2.5]'), variant('ad', [1, 2.5]));
  t.same(parseGVariantText('@as []'), variant('as', []));
  t.same(parseGVariantText("[['a'], ['b', 'c']]"), variant('aas', [['a'], ['b', 'c']]));
});

t.test('what is not a value here is an error that says why', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['', /a value is missing/],
    ['uint64', /a value is missing/],
    ['uint64 -1', /out of range for t/],
    ['byte 256', /out of range for y/],
    ['int32 1.5', /not an integer/],
    ['uint64 true', /a b value where t is wanted/],
    ["'unclosed", /not closed/],
    ['[1, 2', /not closed/],
    ['[]', /empty array needs its type/],
    ["[1, 'a']", /a number where s is wanted/],
    ["['a', uint64 1]", /mixes types s and t/],
    ['5 6', /more after the value/],
    ["{'a': 1}", /unexpected "\{"/],
    ['nothing', /"nothing" is not a value/],
    ["'\\u12'", /wants 4 hex digits/],
  ];
  for (const [text, why] of bad) t.throws(() => parseGVariantText(text), why, JSON.stringify(text));
});
