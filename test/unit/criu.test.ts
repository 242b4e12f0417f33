/**
 * The pure parts of checkpoint and restore, without root or CRIU: the
 * service-mode messages byte for byte (proto2 as CRIU's rpc.proto lays them
 * out), CRIU's version arithmetic, the flags' parsing, and what is quoted
 * from CRIU's log.  The VM test (test/integration/checkpoint.test.ts) has a
 * real CRIU read and answer these.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { CgroupMode, CriuRequestType, decodeResponse, encodeRequest, versionNumber } from '../../src/lib/criu/proto';
import { cgroupMode, criuConfigFile, emptyNsMask, isBindMount, mountKey } from '../../src/lib/criu/checkpoint';
import { criuBinary, criuLogError } from '../../src/lib/criu/swrk';

const hex = (b: Buffer): string => b.toString('hex');

t.test('requests, byte for byte', async (t) => {
  t.equal(hex(encodeRequest({ type: CriuRequestType.VERSION })), '080a', 'VERSION: the type alone');
  t.equal(
    hex(encodeRequest({ type: CriuRequestType.NOTIFY, notifySuccess: true })),
    '08061801',
    "a notification's answer",
  );
  t.equal(
    hex(encodeRequest({ type: CriuRequestType.FEATURE_CHECK, features: { memTrack: true } })),
    '08092a020801',
    'FEATURE_CHECK with mem_track',
  );
  const dump = encodeRequest({
    type: CriuRequestType.DUMP,
    opts: {
      imagesDirFd: 5,
      pid: 1234,
      logFile: 'dump.log',
      extMnt: [{ key: '/data', val: '/data' }],
      manageCgroupsMode: CgroupMode.SOFT,
      emptyNs: 0x40000000,
    },
  });
  // 08 01 | 12 len opts: 08 05, 10 d2 09, 52 08 "dump.log", ba 01 0e (0a 05 "/data" 12 05 "/data"), 90 02 03, b0 02 80 80 80 80 04
  const opts =
    '0805' +
    '10d209' +
    '5208' +
    Buffer.from('dump.log').toString('hex') +
    'ba010e' +
    '0a05' +
    Buffer.from('/data').toString('hex') +
    '1205' +
    Buffer.from('/data').toString('hex') +
    '900203' +
    'b0028080808004';
  t.equal(hex(dump), `0801` + `12${(opts.length / 2).toString(16)}` + opts, 'DUMP: fields above 15 take two-byte tags');
  // int32 -1 is ten bytes (its 64-bit two's complement), as protobuf writes it.
  t.equal(
    hex(encodeRequest({ type: CriuRequestType.DUMP, opts: { imagesDirFd: -1 } })),
    '0801120b08ffffffffffffffffff01',
  );
  t.throws(() => encodeRequest({ type: CriuRequestType.DUMP, opts: { imagesDirFd: 1.5 } }), /not an integer/);
  // restore's --lsm-profile and --lsm-mount-context: no AppArmor or SELinux here to apply them, so the bytes CRIU gets.
  t.equal(
    hex(
      encodeRequest({
        type: CriuRequestType.RESTORE,
        opts: { imagesDirFd: 5, lsmProfile: 'apparmor:p', lsmMountContext: 'c' },
      }),
    ),
    '0802' +
      '1213' +
      '0805' +
      'aa030a' +
      Buffer.from('apparmor:p').toString('hex') +
      'fa0301' +
      Buffer.from('c').toString('hex'),
    'lsm_profile (53) and lsm_mount_context (63)',
  );
});

t.test('responses: what tsrun reads, and what it skips', async (t) => {
  // type NOTIFY, success, notify { script "setup-namespaces", pid 42 }
  const script = Buffer.from('setup-namespaces');
  const notify = Buffer.concat([Buffer.from([0x0a, script.length]), script, Buffer.from([0x10, 42])]);
  const msg = Buffer.concat([Buffer.from([0x08, 0x06, 0x10, 0x01, 0x2a, notify.length]), notify]);
  t.same(decodeResponse(msg), {
    type: CriuRequestType.NOTIFY,
    success: true,
    notify: { script: 'setup-namespaces', pid: 42 },
    crErrno: undefined,
    crErrmsg: undefined,
  });
  // RESTORE answered: restore { pid 4711 }, plus fields of other wire types tsrun does not know (fixed64, fixed32).
  const restored = Buffer.from('08021001220308e7249901010203040506070895040a0b0c0d', 'hex');
  t.match(decodeResponse(restored), { type: CriuRequestType.RESTORE, success: true, restorePid: 4711 });
  // A failure: success false, cr_errno 2 (field 7), cr_errmsg (field 9).
  const failed = Buffer.concat([Buffer.from('080110003802', 'hex'), Buffer.from([0x4a, 4]), Buffer.from('oops')]);
  t.match(decodeResponse(failed), { type: 1, success: false, crErrno: 2, crErrmsg: 'oops' });
  // VERSION: version { major 3, minor 17, sublevel 1 }.
  t.match(decodeResponse(Buffer.from('080a1001520608031011200' + '1', 'hex')), {
    version: { major: 3, minor: 17, sublevel: 1 },
  });
  t.throws(() => decodeResponse(Buffer.from('0801', 'hex')), /without its type or success/);
  t.throws(() => decodeResponse(Buffer.from('08', 'hex')), /runs past the end/);
  t.throws(() => decodeResponse(Buffer.from('0801100122ff01', 'hex')), /runs past the end/);
  t.throws(() => decodeResponse(Buffer.from('0f00', 'hex')), /wire type 7/);
});

t.test("CRIU's version as one number (go-criu's rule)", async (t) => {
  t.equal(versionNumber({ major: 3, minor: 17, sublevel: 1 }), 31701);
  t.equal(versionNumber({ major: 3, minor: 0 }), 30000);
  t.equal(
    versionNumber({ major: 3, minor: 17, sublevel: 1, gitid: 'abc' }),
    31800,
    'a git build counts as the next minor',
  );
});

t.test('flags and names', async (t) => {
  t.equal(cgroupMode(undefined), CgroupMode.DEFAULT);
  t.equal(cgroupMode('soft'), CgroupMode.SOFT);
  t.equal(cgroupMode('ignore'), CgroupMode.IGNORE);
  t.throws(() => cgroupMode('loose'), /--manage-cgroups-mode: must be soft, full, strict or ignore, not "loose"/);
  t.equal(emptyNsMask([]), 0x40000000, 'the network namespace is always restored empty (runc)');
  t.equal(emptyNsMask(['network']), 0x40000000);
  t.throws(() => emptyNsMask(['pid']), /--empty-ns: namespace "pid" is not supported/);
  t.equal(criuConfigFile(undefined), '/etc/criu/runc.conf');
  t.equal(criuConfigFile({ 'org.criu.config': '' }), undefined, 'an empty annotation: no file');
  t.equal(criuConfigFile({ 'org.criu.config': '/etc/criu/mine.conf' }), '/etc/criu/mine.conf');
  t.equal(mountKey('data//x/'), '/data/x');
  t.equal(mountKey('/'), '/');
  t.ok(isBindMount({ destination: '/d', options: ['rbind', 'ro'] }));
  t.ok(isBindMount({ destination: '/d', type: 'bind' }));
  t.notOk(isBindMount({ destination: '/d', type: 'tmpfs' }));
});

t.test("the first Error line of CRIU's log, without its time and source position", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-criu-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'dump.log');
  fs.writeFileSync(
    log,
    [
      '(00.000001) Version: 3.17.1',
      "(00.519596) Error (criu/files-reg.c:1710): Can't lookup mount=23 for fd=0 path=/dev/null",
      '(00.876641) Error (criu/cr-dump.c:2053): Dumping FAILED.',
    ].join('\n'),
  );
  t.equal(criuLogError(log), "Can't lookup mount=23 for fd=0 path=/dev/null");
  fs.writeFileSync(log, 'Error (criu/vdso.c:613): vdso: Unexpected rt vDSO area bounds\n');
  t.equal(criuLogError(log), 'vdso: Unexpected rt vDSO area bounds', "a check's log has no times");
  t.equal(criuLogError(path.join(dir, 'missing.log')), undefined);
});

t.test("restore's mount points are made beneath the rootfs, whatever its symlinks say", async (t) => {
  const { native } = await import('../../src/lib/native');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-criu-mp-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rootfs = path.join(dir, 'rootfs');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(rootfs);
  fs.mkdirSync(outside);
  // An image's content may point anywhere: absolute, and up past the root.
  fs.symlinkSync(outside, path.join(rootfs, 'abs'));
  fs.symlinkSync('../../../outside', path.join(rootfs, 'up'));
  native.makeMountPoint(rootfs, 'abs/data', false);
  native.makeMountPoint(rootfs, 'up/x/file', true);
  native.makeMountPoint(rootfs, 'plain/dir', false);
  t.same(fs.readdirSync(outside), [], 'nothing made outside the rootfs');
  t.ok(
    fs.statSync(path.join(rootfs, dir.slice(1), 'outside', 'data')).isDirectory(),
    'an absolute link is followed inside',
  );
  t.ok(fs.statSync(path.join(rootfs, 'outside', 'x', 'file')).isFile(), '".." stops at the root');
  t.ok(fs.statSync(path.join(rootfs, 'plain', 'dir')).isDirectory());
  native.makeMountPoint(rootfs, 'plain/dir', false);
  t.pass('an existing one is left as it is');
  fs.writeFileSync(path.join(rootfs, 'afile'), '');
  let errno: number | undefined;
  try {
    native.makeMountPoint(rootfs, 'afile/below', false);
  } catch (err) {
    errno = (err as { errno?: number }).errno;
  }
  t.equal(errno, 20, 'ENOTDIR through a file');
});

t.test('--criu: a path as it is, a bare name looked up on PATH (as runc execs it)', async (t) => {
  t.equal(criuBinary('/opt/criu/bin/criu'), '/opt/criu/bin/criu');
  t.match(criuBinary('sh'), /\/sh$/, 'found on PATH');
  t.throws(() => criuBinary('no-such-criu-here'), /^no-such-criu-here: not found on PATH/);
});
