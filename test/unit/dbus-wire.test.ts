/**
 * The D-Bus wire format (src/lib/dbus/wire.ts), byte for byte where the
 * specification fixes the bytes, and round trips for every type.  No root.
 */
import t from 'tap';
import {
  decodeMessage,
  encodeMessage,
  MessageType,
  messageLength,
  Reader,
  splitSignature,
  variant,
  Writer,
} from '../../src/lib/dbus/wire';

const hex = (b: Buffer): string => b.toString('hex');

t.test('signatures split into complete types', async (t) => {
  t.same(splitSignature('sa{sv}(ii)ab'), ['s', 'a{sv}', '(ii)', 'ab']);
  t.same(splitSignature('ssa(sv)a(sa(sv))'), ['s', 's', 'a(sv)', 'a(sa(sv))']);
  t.throws(() => splitSignature('a('), /unclosed/);
  t.throws(() => splitSignature('z'), /unknown type code z/);
});

t.test('a{sv} is laid out as the specification says: length, padding to 8, aligned entries', async (t) => {
  const w = new Writer();
  w.value('a{sv}', [['a', variant('u', 1)]]);
  // length 16 | pad to 8 | "a" (len 1, 'a', NUL) | variant: sig "u" (1, 'u', NUL) | pad to 4 | u32 1
  t.equal(hex(w.result()), '10000000' + '00000000' + '01000000' + '6100' + '017500' + '000000' + '01000000');
});

t.test('every type round-trips', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['y', 200],
    ['b', true],
    ['n', -2],
    ['q', 65535],
    ['i', -7],
    ['u', 4000000000],
    ['x', -(2n ** 62n)],
    ['t', 2n ** 64n - 1n],
    ['d', 1.5],
    ['s', 'grüße'],
    ['o', '/org/freedesktop/systemd1/unit/x_2escope'],
    ['g', 'a(sv)'],
    ['v', variant('as', ['a', 'b'])],
    [
      'a(sv)',
      [
        ['Delegate', variant('b', true)],
        ['MemoryMax', variant('t', 1048576n)],
      ],
    ],
    ['a(sa(sv))', [['x', [['y', variant('s', 'z')]]]]],
    ['aay', [[1, 2], [], [3]]],
    ['(yt)', [1, 5n]],
  ];
  for (const [type, value] of cases) {
    const w = new Writer();
    w.byte(0); // start unaligned, so every alignment rule is exercised
    w.value(type, value as never);
    const r = new Reader(w.result(), 1);
    t.same(r.value(type), value, type);
  }
});

t.test('values that do not fit their type are refused', async (t) => {
  t.throws(() => new Writer().value('s', 3), /cannot marshal/);
  t.throws(() => new Writer().value('s', 'a\0b'), /NUL/);
  t.throws(() => new Writer().value('(ss)', ['a']), /2 fields, 1 given/);
  t.throws(() => new Writer().value('v', variant('ss', ['a', 'b'] as never)), /not one complete type/);
});

t.test('a whole message: header fields, body, and its length from the first 16 bytes', async (t) => {
  const m = encodeMessage({
    type: MessageType.METHOD_CALL,
    serial: 7,
    destination: 'org.freedesktop.systemd1',
    path: '/org/freedesktop/systemd1',
    interface: 'org.freedesktop.systemd1.Manager',
    member: 'StartTransientUnit',
    signature: 'ssa(sv)a(sa(sv))',
    body: ['tsrun-c1.scope', 'fail', [['Delegate', variant('b', true)]], []],
  });
  t.equal(messageLength(m), m.length, 'the length is known from the header alone');
  t.equal(messageLength(m.subarray(0, 15)), 0, 'not before 16 bytes are in');
  const d = decodeMessage(m);
  t.match(d, {
    type: MessageType.METHOD_CALL,
    serial: 7,
    destination: 'org.freedesktop.systemd1',
    member: 'StartTransientUnit',
    signature: 'ssa(sv)a(sa(sv))',
  });
  t.same(d.body, ['tsrun-c1.scope', 'fail', [['Delegate', { signature: 'b', value: true }]], []]);
  t.throws(() => decodeMessage(m.subarray(0, m.length - 1)), /truncated/);
});
