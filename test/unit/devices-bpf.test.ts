/**
 * The cgroup v2 device filter's semantics, checked by running the compiled
 * bytecode in a small evaluator: runc's rules (last match wins, default deny).
 */
import t from 'tap';
import { compileDeviceInsns, compileDeviceProgram, type DeviceRule, evaluate } from '../../src/lib/cgroup/devices-bpf';

const denyAll: DeviceRule = { allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' };
const allowNull: DeviceRule = { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' };

t.test('deny all, then allow one device', async (t) => {
  const p = compileDeviceInsns([denyAll, allowNull]);
  t.ok(evaluate(p, 'c', 'rw', 1, 3), '/dev/null allowed');
  t.notOk(evaluate(p, 'c', 'r', 1, 5), '/dev/zero denied');
  t.notOk(evaluate(p, 'b', 'r', 1, 3), 'a block device with the same numbers is denied');
});

t.test('the last matching rule wins', async (t) => {
  const p = compileDeviceInsns([denyAll, allowNull, { allow: false, type: 'c', major: 1, minor: 3, access: 'w' }]);
  t.ok(evaluate(p, 'c', 'r', 1, 3), 'reading still allowed');
  t.notOk(evaluate(p, 'c', 'w', 1, 3), 'writing denied by the later rule');
});

t.test('access is a subset check; wildcards match any number', async (t) => {
  const p = compileDeviceInsns([denyAll, { allow: true, type: 'c', major: 136, minor: -1, access: 'rw' }]);
  t.ok(evaluate(p, 'c', 'r', 136, 7));
  t.ok(evaluate(p, 'c', 'rw', 136, 0));
  t.notOk(evaluate(p, 'c', 'm', 136, 0), 'mknod was not granted');
  t.notOk(evaluate(p, 'c', 'r', 137, 0));
});

t.test('no rule matching means deny; an allow-all allows everything', async (t) => {
  t.notOk(evaluate(compileDeviceInsns([]), 'c', 'r', 1, 3));
  t.ok(evaluate(compileDeviceInsns([{ ...denyAll, allow: true }]), 'b', 'rwm', 8, 0));
});

t.test('the wire form is 8 bytes an instruction and ends in exit', async (t) => {
  const buf = compileDeviceProgram([denyAll, allowNull]);
  t.equal(buf.length, compileDeviceInsns([denyAll, allowNull]).length * 8);
  t.equal(buf.readUInt8(buf.length - 8), 0x95, 'last instruction is exit');
});
