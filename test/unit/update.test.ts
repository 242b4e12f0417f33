import t from 'tap';
import { parseBytes } from '../../src/cli/update';

t.test('sizes parse like runc update flags', async (t) => {
  t.equal(parseBytes('1048576', '--memory'), 1048576);
  t.equal(parseBytes('512k', '--memory'), 512 * 1024);
  t.equal(parseBytes('64m', '--memory'), 64 * 1024 * 1024);
  t.equal(parseBytes('1G', '--memory'), 1024 ** 3);
  t.equal(parseBytes('2gb', '--memory'), 2 * 1024 ** 3);
  t.equal(parseBytes('1.5m', '--memory'), 1.5 * 1024 * 1024);
  t.equal(parseBytes('-1', '--memory-swap'), -1, 'unlimited');
  t.throws(() => parseBytes('lots', '--memory'), /--memory: "lots" is not a size/);
  t.throws(() => parseBytes('5x', '--memory'), /not a size/);
});

t.test("event intervals parse like runc's", async (t) => {
  const { parseInterval } = await import('../../src/cli/events');
  t.equal(parseInterval('5s'), 5000);
  t.equal(parseInterval('500ms'), 500);
  t.equal(parseInterval('1m'), 60_000);
  t.equal(parseInterval('2'), 2000);
  t.throws(() => parseInterval('0s'), /--interval/);
  t.throws(() => parseInterval('soon'), /--interval/);
});
