/**
 * linux.maskedPaths and linux.readonlyPaths: files masked with a verified
 * /dev/null, directories with a read-only tmpfs, read-only paths bound
 * read-only; a /dev/null that is not the null device refuses to mask.
 */
import * as fs from 'fs';

import t from 'tap';
import { defaultSpec } from '../../src/lib/spec-default';
import * as path from 'path';
import { IS_ROOT, leftovers, makeBundle, runChecker, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const spec = defaultSpec({ rootless: false, cgroupNamespace: false });
const withProtection = (c: any): void => {
  c.linux.maskedPaths = spec.linux!.maskedPaths;
  c.linux.readonlyPaths = spec.linux!.readonlyPaths;
};

// Masked files that this kernel has (not every kernel has /proc/kcore).
const maskedFiles = (spec.linux!.maskedPaths ?? []).filter((p) => fs.existsSync(p) && fs.statSync(p).isFile());

t.test('a masked file reads empty: it is /dev/null', async (t) => {
  t.ok(maskedFiles.length > 0, `masked files present here: ${maskedFiles.join(' ')}`);
  for (const file of maskedFiles.slice(0, 3)) {
    const { report, result } = runChecker(t, withProtection, ['read', file]);
    t.equal(result.status, 0, result.stderr);
    t.equal(report.content, '', `${file} reads as /dev/null`);
    const st = runChecker(t, withProtection, ['stat', file]).report;
    t.match(st, { type: 'c', major: 1, minor: 3 }, `${file} is the null device`);
  }
});

t.test('a masked directory is an empty read-only tmpfs', async (t) => {
  const { report } = runChecker(t, withProtection);
  const acpi = report.mounts.find((m: any) => m.mountpoint === '/proc/acpi');
  if (!fs.existsSync('/proc/acpi')) return t.pass('this kernel has no /proc/acpi');
  t.match(acpi, { fstype: 'tmpfs' });
  t.match(acpi.options, /^ro\b/, 'read-only');
});

t.test('read-only paths cannot be written', async (t) => {
  const { report } = runChecker(t, withProtection, ['write', '/proc/sys/kernel/hostname', 'x']);
  t.equal(report.code, 'EROFS', '/proc/sys is read-only');
  const mounts = runChecker(t, withProtection).report.mounts;
  const sys = mounts.find((m: any) => m.mountpoint === '/proc/sys');
  t.match(sys?.options, /^ro\b/);
});

t.test('masking refuses a /dev/null that is not the null device (CVE-2025-31133), leaving nothing', async (t) => {
  for (const kind of ['file', 'symlink'] as const) {
    const bundle = makeBundle(t, (c) => {
      // A bound /dev is used as it is: tsrun creates no devices in it.
      c.mounts = c.mounts!.filter((m) => !m.destination.startsWith('/dev'));
      c.mounts.push({ destination: '/dev', type: 'bind', source: 'fakedev', options: ['rbind'] });
      c.linux!.maskedPaths = ['/proc/keys'];
    });
    const fakedev = path.join(bundle.dir, 'fakedev');
    fs.mkdirSync(fakedev);
    const bait = path.join(bundle.dir, 'bait');
    fs.writeFileSync(bait, 'host secret');
    if (kind === 'file') fs.writeFileSync(path.join(fakedev, 'null'), '');
    else fs.symlinkSync('/proc/sys/kernel/core_pattern', path.join(fakedev, 'null'));
    const id = uniqueId('mask');
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.not(r.status, 0, `a ${kind} as /dev/null is refused`);
    t.match(r.stderr, /^tsrun: run \S+: mask \/proc\/keys: \/dev\/null is not the null device: /);
    t.same(leftovers(bundle, id), [], 'nothing left');
  }
});
