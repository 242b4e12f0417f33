/**
 * The cgroup v2 device filter for real: load and attach the compiled
 * program to a cgroup2 directory, then open devices from a process in it.
 * Runs wherever a cgroup2 tree exists (on a hybrid host, its "unified" one).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { effectiveDeviceRules } from '../../src/lib/cgroup/devices';
import { compileDeviceProgram, type DeviceRule } from '../../src/lib/cgroup/devices-bpf';
import { readHierarchies } from '../../src/lib/cgroup/manager';
import { native } from '../../src/lib/native';
import { IS_ROOT, uniqueId } from '../helpers';

const v2 = readHierarchies().find((h) => h.version === 2);
if (!IS_ROOT || !v2) {
  t.plan(0, 'needs root and a cgroup2 hierarchy');
  process.exit(0);
}

/** Open each device from a shell placed in `dir`; returns which opens worked. */
function tryOpen(dir: string, devices: string[]): Record<string, boolean> {
  const script = `echo $$ > ${dir}/cgroup.procs; ${devices.map((d) => `head -c1 ${d} >/dev/null 2>&1 && echo ${d}=ok || echo ${d}=no`).join('; ')}`;
  const out = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' }).stdout;
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => [l.split('=')[0], l.endsWith('=ok')]),
  );
}

t.test('deny all but /dev/null, then replace the filter with allow-all', async (t) => {
  const dir = path.join(v2!.mountPoint, uniqueId('bpf'));
  fs.mkdirSync(dir);
  t.teardown(() => fs.rmdirSync(dir));
  const denyAll: DeviceRule = { allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' };
  native.attachDeviceProgram(
    dir,
    compileDeviceProgram(
      effectiveDeviceRules([denyAll, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }]),
    ),
  );
  t.same(tryOpen(dir, ['/dev/null', '/dev/zero']), { '/dev/null': true, '/dev/zero': false });
  native.attachDeviceProgram(dir, compileDeviceProgram(effectiveDeviceRules([{ ...denyAll, allow: true }])));
  t.same(
    tryOpen(dir, ['/dev/null', '/dev/zero']),
    { '/dev/null': true, '/dev/zero': true },
    'the old filter was detached',
  );
});

t.test('exceptions the kernel checks as cgroup v1 would: a deny takes any part, an allow needs all', async (t) => {
  const dir = path.join(v2!.mountPoint, uniqueId('bpf'));
  fs.mkdirSync(dir);
  t.teardown(() => fs.rmdirSync(dir));
  const zero = (allow: boolean, access: string): DeviceRule => ({ allow, type: 'c', major: 1, minor: 5, access });
  /** Opens /dev/zero for reading, writing, and both, from a shell in `dir`. */
  const opens = (): string => {
    const script = `echo $$ > ${dir}/cgroup.procs; for how in '<' '>' '<>'; do (eval "exec 3$how/dev/zero") 2>/dev/null && printf '%s ok,' "$how" || printf '%s no,' "$how"; done`;
    return spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' }).stdout;
  };
  const allowAll: DeviceRule = { allow: true, type: 'a', major: -1, minor: -1, access: 'rwm' };
  native.attachDeviceProgram(dir, compileDeviceProgram(effectiveDeviceRules([allowAll, zero(false, 'w')])));
  t.equal(opens(), '< ok,> no,<> no,', 'a deny of "w" under an allow-all: reads only, O_RDWR refused');
  const denyAll: DeviceRule = { ...allowAll, allow: false };
  const devNull: DeviceRule = { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }; // the shell's 2>/dev/null
  native.attachDeviceProgram(
    dir,
    compileDeviceProgram(effectiveDeviceRules([denyAll, devNull, zero(true, 'rw'), zero(false, 'w')])),
  );
  t.equal(opens(), '< ok,> no,<> no,', '"rw" allowed then "w" denied: reads only, O_RDWR refused');
});

t.test('a program the kernel refuses is a clear error', async (t) => {
  const dir = path.join(v2!.mountPoint, uniqueId('bpf'));
  fs.mkdirSync(dir);
  t.teardown(() => fs.rmdirSync(dir));
  t.throws(() => native.attachDeviceProgram(dir, Buffer.alloc(8)), /BPF_PROG_LOAD/);
});
