/**
 * The cgroup v2 device filter's semantics, checked by running the compiled
 * bytecode in a small evaluator: what the rules come to on cgroup v1
 * (effectiveDeviceRules), decided as v1's kernel decides it.
 */
import t from 'tap';
import { DEFAULT_DEVICE_RULES, effectiveDeviceRules } from '../../src/lib/cgroup/devices';
import { compileDeviceInsns, compileDeviceProgram, type DeviceRule, evaluate } from '../../src/lib/cgroup/devices-bpf';

const denyAll: DeviceRule = { allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' };
const allowAll: DeviceRule = { ...denyAll, allow: true };
const allowNull: DeviceRule = { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' };
const fuse = (allow: boolean, access: string): DeviceRule => ({ allow, type: 'c', major: 10, minor: 229, access });
const program = (rules: DeviceRule[]) => compileDeviceInsns(effectiveDeviceRules(rules));

t.test('deny all, then allow one device', async (t) => {
  const p = program([denyAll, allowNull]);
  t.ok(evaluate(p, 'c', 'rw', 1, 3), '/dev/null allowed');
  t.notOk(evaluate(p, 'c', 'r', 1, 5), '/dev/zero denied');
  t.notOk(evaluate(p, 'b', 'r', 1, 3), 'a block device with the same numbers is denied');
});

t.test('a later rule takes access out of an earlier one', async (t) => {
  const p = program([denyAll, fuse(true, 'rw'), fuse(false, 'w')]);
  t.ok(evaluate(p, 'c', 'r', 10, 229), 'reading still allowed');
  t.notOk(evaluate(p, 'c', 'w', 10, 229), 'writing denied by the later rule');
  // Compiled rule by rule (the last match wins, a match needs all of the access), the deny of
  // "w" did not match an O_RDWR open and the allow of "rw" let it through.
  t.notOk(evaluate(p, 'c', 'rw', 10, 229), 'an O_RDWR open denied: it needs the "w" taken out');
});

t.test('under an allow-all, a deny of part of the access refuses every access that includes it', async (t) => {
  const p = program([allowAll, fuse(false, 'w')]);
  t.ok(evaluate(p, 'c', 'r', 10, 229), 'reading allowed');
  t.notOk(evaluate(p, 'c', 'w', 10, 229));
  t.notOk(evaluate(p, 'c', 'rw', 10, 229), 'an O_RDWR open refused, as cgroup v1 refuses it (runc lets it through)');
  t.ok(evaluate(p, 'c', 'rw', 10, 228), 'other devices as before');
});

t.test('an access asking for nothing (F_OK) takes no part of a deny, as on cgroup v1', async (t) => {
  // The kernel asks the filter with access 0 for faccessat(F_OK) on a node.  v1 matches a deny
  // exception only on overlapping access, so such a check passed under an allow-all.
  const p = program([allowAll, fuse(false, 'rwm')]);
  t.ok(evaluate(p, 'c', '', 10, 229), 'F_OK on the denied node passes');
  t.notOk(evaluate(p, 'c', 'r', 10, 229), 'reading it does not');
  t.ok(evaluate(program([denyAll, fuse(true, 'r')]), 'c', '', 10, 229), 'an allow grants access 0 too');
  t.notOk(evaluate(program([denyAll]), 'c', '', 10, 229), 'the deny-all default refuses it, as v1');
});

t.test('a type-a rule sets the default whatever its access, and drops what came before', async (t) => {
  const p = program([denyAll, fuse(true, 'rwm'), { ...allowAll, access: 'r' }, { ...denyAll, access: 'm' }]);
  // Compiled rule by rule, a deny "a m" matched only an mknod and left reads and writes to the allow-all.
  for (const access of ['r', 'w', 'm', 'rw'])
    t.notOk(evaluate(p, 'c', access, 10, 229), `"${access}" denied: the last "a" denies everything`);
});

t.test('a wildcard number matches any; access is all-or-nothing for an allow', async (t) => {
  const p = program([denyAll, { allow: true, type: 'c', major: 136, minor: -1, access: 'rw' }]);
  t.ok(evaluate(p, 'c', 'r', 136, 7));
  t.ok(evaluate(p, 'c', 'rw', 136, 0));
  t.notOk(evaluate(p, 'c', 'm', 136, 0), 'mknod was not granted');
  t.notOk(evaluate(p, 'c', 'rm', 136, 0), 'nor read with mknod');
  t.notOk(evaluate(p, 'c', 'r', 137, 0));
});

t.test('no exception means the default; an allow-all allows everything', async (t) => {
  t.notOk(evaluate(program([]), 'c', 'r', 1, 3));
  t.ok(evaluate(program([allowAll]), 'b', 'rwm', 8, 0));
  t.ok(evaluate(program([denyAll, allowAll]), 'c', 'rw', 10, 229));
});

t.test("runc's defaults after a deny-all: its list exactly", async (t) => {
  const p = program([denyAll, ...DEFAULT_DEVICE_RULES]);
  t.ok(evaluate(p, 'c', 'rw', 1, 9), '/dev/urandom');
  t.ok(evaluate(p, 'c', 'rw', 10, 200), '/dev/net/tun');
  t.ok(evaluate(p, 'b', 'm', 7, 0), 'mknod of a block device');
  t.notOk(evaluate(p, 'b', 'r', 7, 0), 'but not reading it');
  t.notOk(evaluate(p, 'c', 'rw', 5, 1), "the host's console");
});

t.test('a hole punched in a wider rule is refused, as runc refuses it', async (t) => {
  t.throws(
    () => program([denyAll, { allow: true, type: 'c', major: -1, minor: -1, access: 'rwm' }, fuse(false, 'w')]),
    /takes access out of the wider "c \*:\* rwm"/,
  );
});

t.test('the wire form is 8 bytes an instruction and ends in exit', async (t) => {
  const set = effectiveDeviceRules([denyAll, allowNull]);
  const buf = compileDeviceProgram(set);
  t.equal(buf.length, compileDeviceInsns(set).length * 8);
  t.equal(buf.readUInt8(buf.length - 8), 0x95, 'last instruction is exit');
});
