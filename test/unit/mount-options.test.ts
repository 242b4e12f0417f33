import t from 'tap';
import { MOUNT_ATTR, MS, isKnownMountOption, parseMountOptions } from '../../src/lib/mount-options';

t.test('constants have the kernel values', async (t) => {
  t.equal(MS.RDONLY, 1);
  t.equal(MS.BIND, 4096);
  t.equal(MS.REC, 16384);
  t.equal(MS.PRIVATE, 0x40000);
  t.equal(MS.SHARED, 0x100000);
  t.equal(MS.STRICTATIME, 0x1000000);
  t.equal(MS.LAZYTIME, 0x2000000);
  t.equal(MOUNT_ATTR.IDMAP, 0x100000);
  t.equal(MOUNT_ATTR.NOSYMFOLLOW, 0x200000);
  t.equal(MOUNT_ATTR._ATIME, 0x70);
});

t.test('no options gives an empty result', async (t) => {
  t.same(parseMountOptions([], 'mounts[0].options'), {
    flags: 0,
    clearFlags: 0,
    propagation: 0,
    recursiveAttrSet: 0,
    recursiveAttrClr: 0,
    data: '',
    bind: false,
    recursiveBind: false,
    idmap: false,
    recursiveIdmap: false,
    tmpcopyup: false,
  });
});

t.test('flags and filesystem data from the default /dev mount', async (t) => {
  const result = parseMountOptions(['nosuid', 'strictatime', 'mode=755', 'size=65536k'], 'm');
  t.equal(result.flags, MS.NOSUID | MS.STRICTATIME);
  t.equal(result.data, 'mode=755,size=65536k');
  t.equal(result.bind, false);
});

t.test('devpts data options pass through unchanged and in order', async (t) => {
  const result = parseMountOptions(['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'], 'm');
  t.equal(result.flags, MS.NOSUID | MS.NOEXEC);
  t.equal(result.data, 'newinstance,ptmxmode=0666,mode=0620,gid=5');
});

t.test('every plain flag option', async (t) => {
  const cases: [string, number][] = [
    ['ro', MS.RDONLY],
    ['nosuid', MS.NOSUID],
    ['nodev', MS.NODEV],
    ['noexec', MS.NOEXEC],
    ['sync', MS.SYNCHRONOUS],
    ['remount', MS.REMOUNT],
    ['mand', MS.MANDLOCK],
    ['dirsync', MS.DIRSYNC],
    ['nosymfollow', MS.NOSYMFOLLOW],
    ['noatime', MS.NOATIME],
    ['nodiratime', MS.NODIRATIME],
    ['relatime', MS.RELATIME],
    ['strictatime', MS.STRICTATIME],
    ['lazytime', MS.LAZYTIME],
    ['iversion', MS.I_VERSION],
    ['silent', MS.SILENT],
    ['defaults', 0],
  ];
  for (const [option, flag] of cases) {
    const result = parseMountOptions([option], 'm');
    t.equal(result.flags, flag, option);
    t.equal(result.data, '', `${option} is not data`);
  }
});

t.test('clearing options cancel earlier setting options and record the cleared bit', async (t) => {
  const pairs: [string, string, number][] = [
    ['ro', 'rw', MS.RDONLY],
    ['nosuid', 'suid', MS.NOSUID],
    ['nodev', 'dev', MS.NODEV],
    ['noexec', 'exec', MS.NOEXEC],
    ['sync', 'async', MS.SYNCHRONOUS],
    ['mand', 'nomand', MS.MANDLOCK],
    ['noatime', 'atime', MS.NOATIME],
    ['nodiratime', 'diratime', MS.NODIRATIME],
    ['relatime', 'norelatime', MS.RELATIME],
    ['strictatime', 'nostrictatime', MS.STRICTATIME],
    ['lazytime', 'nolazytime', MS.LAZYTIME],
    ['iversion', 'noiversion', MS.I_VERSION],
    ['silent', 'loud', MS.SILENT],
    ['nosymfollow', 'symfollow', MS.NOSYMFOLLOW],
  ];
  for (const [on, off, flag] of pairs) {
    const cleared = parseMountOptions([on, off], 'm');
    t.equal(cleared.flags, 0, `${on},${off}`);
    t.equal(cleared.clearFlags, flag, `${on},${off} clearFlags`);
    const setAgain = parseMountOptions([off, on], 'm');
    t.equal(setAgain.flags, flag, `${off},${on}`);
    t.equal(setAgain.clearFlags, 0, `${off},${on} clearFlags`);
  }
});

t.test('bind and rbind', async (t) => {
  const bind = parseMountOptions(['bind', 'ro'], 'm');
  t.equal(bind.flags, MS.BIND | MS.RDONLY);
  t.equal(bind.bind, true);
  t.equal(bind.recursiveBind, false);

  const rbind = parseMountOptions(['rbind'], 'm');
  t.equal(rbind.flags, MS.BIND | MS.REC);
  t.equal(rbind.bind, true);
  t.equal(rbind.recursiveBind, true);
});

t.test('propagation options', async (t) => {
  const cases: [string, number][] = [
    ['shared', MS.SHARED],
    ['rshared', MS.SHARED | MS.REC],
    ['slave', MS.SLAVE],
    ['rslave', MS.SLAVE | MS.REC],
    ['private', MS.PRIVATE],
    ['rprivate', MS.PRIVATE | MS.REC],
    ['unbindable', MS.UNBINDABLE],
    ['runbindable', MS.UNBINDABLE | MS.REC],
  ];
  for (const [option, propagation] of cases) {
    const result = parseMountOptions(['bind', option], 'm');
    t.equal(result.propagation, propagation, option);
    t.equal(result.flags, MS.BIND, `${option} is not a mount(2) flag here`);
  }
  t.equal(parseMountOptions(['rprivate', 'rslave'], 'm').propagation, MS.SLAVE | MS.REC, 'last one wins');
});

t.test('recursive attribute options', async (t) => {
  const cases: [string, number, number][] = [
    ['rro', MOUNT_ATTR.RDONLY, 0],
    ['rrw', 0, MOUNT_ATTR.RDONLY],
    ['rnosuid', MOUNT_ATTR.NOSUID, 0],
    ['rsuid', 0, MOUNT_ATTR.NOSUID],
    ['rnodev', MOUNT_ATTR.NODEV, 0],
    ['rdev', 0, MOUNT_ATTR.NODEV],
    ['rnoexec', MOUNT_ATTR.NOEXEC, 0],
    ['rexec', 0, MOUNT_ATTR.NOEXEC],
    ['rnodiratime', MOUNT_ATTR.NODIRATIME, 0],
    ['rdiratime', 0, MOUNT_ATTR.NODIRATIME],
    ['rnosymfollow', MOUNT_ATTR.NOSYMFOLLOW, 0],
    ['rsymfollow', 0, MOUNT_ATTR.NOSYMFOLLOW],
  ];
  for (const [option, attrSet, attrClr] of cases) {
    const result = parseMountOptions(['rbind', option], 'm');
    t.equal(result.recursiveAttrSet, attrSet, `${option} set`);
    t.equal(result.recursiveAttrClr, attrClr, `${option} clr`);
    t.equal(result.flags, MS.BIND | MS.REC, `${option} leaves mount(2) flags alone`);
  }
  const overridden = parseMountOptions(['rro', 'rrw'], 'm');
  t.equal(overridden.recursiveAttrSet, 0);
  t.equal(overridden.recursiveAttrClr, MOUNT_ATTR.RDONLY);
});

t.test('recursive atime options always replace the whole atime enum', async (t) => {
  const cases: [string, number][] = [
    ['rnoatime', MOUNT_ATTR.NOATIME],
    ['rstrictatime', MOUNT_ATTR.STRICTATIME],
    ['rrelatime', MOUNT_ATTR.RELATIME],
    ['ratime', MOUNT_ATTR.RELATIME],
    ['rnorelatime', MOUNT_ATTR.RELATIME],
    ['rnostrictatime', MOUNT_ATTR.RELATIME],
  ];
  for (const [option, atime] of cases) {
    const result = parseMountOptions([option], 'm');
    t.equal(result.recursiveAttrSet, atime, `${option} set`);
    t.equal(result.recursiveAttrClr, MOUNT_ATTR._ATIME, `${option} clears the full mask`);
  }
  const last = parseMountOptions(['rnoatime', 'rro', 'rstrictatime'], 'm');
  t.equal(last.recursiveAttrSet, MOUNT_ATTR.RDONLY | MOUNT_ATTR.STRICTATIME);
});

t.test('idmap, ridmap and tmpcopyup are flags of the result, not data', async (t) => {
  const idmap = parseMountOptions(['bind', 'idmap'], 'm');
  t.equal(idmap.idmap, true);
  t.equal(idmap.recursiveIdmap, false);
  t.equal(idmap.data, '');

  const ridmap = parseMountOptions(['rbind', 'ridmap'], 'm');
  t.equal(ridmap.idmap, true);
  t.equal(ridmap.recursiveIdmap, true);
  t.equal(ridmap.recursiveAttrSet, 0, 'IDMAP needs a userns fd, so it is not folded into attr_set');

  const copyup = parseMountOptions(['tmpcopyup', 'mode=755'], 'm');
  t.equal(copyup.tmpcopyup, true);
  t.equal(copyup.data, 'mode=755');
});

t.test('isKnownMountOption', async (t) => {
  t.ok(isKnownMountOption('rro'));
  t.ok(isKnownMountOption('rshared'));
  t.ok(isKnownMountOption('tmpcopyup'));
  t.notOk(isKnownMountOption('mode=755'));
  t.notOk(isKnownMountOption('RO'), 'options are case-sensitive');
});

t.test('an empty option is an error naming its index', async (t) => {
  t.throws(() => parseMountOptions(['ro', ''], 'mounts[3].options'), { message: /^mounts\[3\]\.options\[1\]: / });
});
