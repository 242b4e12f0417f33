import t from 'tap';
import { parseSignal, signalName } from '../../src/lib/signals';

t.test('names with and without SIG, any case', async (t) => {
  t.equal(parseSignal('SIGTERM'), 15);
  t.equal(parseSignal('TERM'), 15);
  t.equal(parseSignal('term'), 15);
  t.equal(parseSignal('sigKill'), 9);
  t.equal(parseSignal('HUP'), 1);
  t.equal(parseSignal('USR1'), 10);
  t.equal(parseSignal('SIGWINCH'), 28);
  t.equal(parseSignal('IOT'), 6, 'alias');
});

t.test('decimal numbers', async (t) => {
  t.equal(parseSignal('9'), 9);
  t.equal(parseSignal('1'), 1);
  t.equal(parseSignal('64'), 64);
  t.equal(parseSignal('32'), 32);
});

t.test('real-time signals', async (t) => {
  t.equal(parseSignal('RTMIN'), 34);
  t.equal(parseSignal('SIGRTMIN'), 34);
  t.equal(parseSignal('rtmin+3'), 37);
  t.equal(parseSignal('SIGRTMAX'), 64);
  t.equal(parseSignal('RTMAX-2'), 62);
  t.equal(parseSignal('RTMIN+30'), 64);
});

t.test('unknown signals', async (t) => {
  for (const raw of ['FOO', 'SIGFOO', '0', '65', '-1', '', 'RTMIN+31', 'RTMAX-31', 'RTMIN-1', 'RTMAX+1', '1.5', ' 9']) {
    t.throws(() => parseSignal(raw), { message: `unknown signal ${JSON.stringify(raw)}` }, raw);
  }
});

t.test('signalName', async (t) => {
  t.equal(signalName(15), 'SIGTERM');
  t.equal(signalName(9), 'SIGKILL');
  t.equal(signalName(6), 'SIGABRT', 'canonical name over SIGIOT');
  t.equal(signalName(29), 'SIGIO', 'canonical name over SIGPOLL');
  t.equal(signalName(17), 'SIGCHLD');
  t.equal(signalName(32), 'SIG32');
  t.equal(signalName(34), 'SIGRTMIN');
  t.equal(signalName(37), 'SIGRTMIN+3');
  t.equal(signalName(49), 'SIGRTMIN+15');
  t.equal(signalName(50), 'SIGRTMAX-14');
  t.equal(signalName(64), 'SIGRTMAX');
  t.throws(() => signalName(0), RangeError);
  t.throws(() => signalName(65), RangeError);
});

t.test('names round-trip', async (t) => {
  for (let number = 1; number <= 64; number++) {
    if (number === 32 || number === 33) continue;
    t.equal(parseSignal(signalName(number)), number, signalName(number));
  }
});
