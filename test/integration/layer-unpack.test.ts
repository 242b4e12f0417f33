/**
 * Layers unpacked by src/lib/image/unpack.ts, on the real filesystem as
 * root: every entry type with its owner, mode, times and xattrs (binary
 * ones too), overlay whiteouts, the diffID, and hostile archives that must
 * be contained or refused without a byte written outside the layer.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import * as zlib from 'zlib';
import t from 'tap';
import { unpackLayer } from '../../src/lib/image/unpack';
import { IS_ROOT, tempDir, tarOf, type TarEntry } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'layer tests need root (owners, devices, trusted xattrs)');
  process.exit(0);
}

type Entry = TarEntry;

/** A PAX header carrying raw bytes (tar-stream's packer writes values as UTF-8 only). */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function xattr(file: string, name: string): Buffer | null {
  const r = spawnSync('python3', [
    '-c',
    'import os,sys;sys.stdout.buffer.write(os.getxattr(sys.argv[1],sys.argv[2],follow_symlinks=False))',
    file,
    name,
  ]);
  return r.status === 0 ? r.stdout : null;
}

const MTIME = new Date('2020-02-02T02:02:02Z');

t.test('every entry type, with owner, mode, times and xattrs', async (t) => {
  const dir = tempDir(t, 'tsrun-layer-');
  const long = 'd/' + 'n'.repeat(150);
  const archive = await tarOf([
    { name: 'd/', type: 'directory', mode: 0o750, uid: 1, gid: 2, mtime: MTIME },
    { name: 'd/file', type: 'file', mode: 0o4755, uid: 1000, gid: 1001, mtime: MTIME, content: 'hello\n' },
    { name: 'd/sticky/', type: 'directory', mode: 0o1777, mtime: MTIME },
    { name: 'd/link', type: 'symlink', linkname: '/etc/passwd', mtime: MTIME },
    { name: 'd/hard', type: 'link', linkname: 'd/file', mtime: MTIME },
    { name: 'd/fifo', type: 'fifo', mode: 0o600, mtime: MTIME },
    { name: 'd/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666, mtime: MTIME },
    { name: long, type: 'file', mode: 0o644, mtime: MTIME, content: 'long' },
    { name: 'x', type: 'file', mode: 0o644, mtime: MTIME, content: 'x', pax: { 'SCHILY.xattr.user.note': 'plain' } },
  ]);
  const r = await unpackLayer(Readable.from([archive]), dir, 'layer 1');
  t.equal(
    r.diffID,
    `sha256:${createHash('sha256').update(archive).digest('hex')}`,
    'the diffID is the sha256 of the tar',
  );
  const st = (p: string): fs.Stats => fs.lstatSync(path.join(dir, p));
  t.equal(st('d').mode & 0o7777, 0o750);
  t.same([st('d').uid, st('d').gid], [1, 2]);
  t.equal(st('d').mtime.getTime(), MTIME.getTime(), 'directory times set after its content');
  t.equal(fs.readFileSync(path.join(dir, 'd/file'), 'utf8'), 'hello\n');
  t.equal(st('d/file').mode & 0o7777, 0o4755, 'setuid kept');
  t.same([st('d/file').uid, st('d/file').gid], [1000, 1001]);
  t.equal(st('d/file').mtime.getTime(), MTIME.getTime());
  t.equal(st('d/sticky').mode & 0o7777, 0o1777, 'sticky kept');
  t.equal(fs.readlinkSync(path.join(dir, 'd/link')), '/etc/passwd', 'symlinks keep their text, never followed');
  t.equal(st('d/hard').ino, st('d/file').ino, 'hardlink to an earlier entry');
  t.ok(st('d/fifo').isFIFO());
  t.ok(st('d/null').isCharacterDevice());
  t.equal(st('d/null').rdev, (1 << 8) | 3);
  t.equal(fs.readFileSync(path.join(dir, long), 'utf8'), 'long', 'a name past 100 bytes');
  t.equal(xattr(path.join(dir, 'x'), 'user.note')?.toString(), 'plain');
});

t.test('a binary security.capability survives byte for byte', async (t) => {
  const dir = tempDir(t, 'tsrun-layer-');
  // VFS_CAP_REVISION_2, effective, permitted = CAP_SETUID (bit 7: a 0x80 byte) | CAP_NET_BIND_SERVICE.
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const body = Buffer.from('#!/bin/sh\n');
  const pax = paxRecord('SCHILY.xattr.security.capability', cap);
  const paxHeader = await tarOf([{ name: 'PaxHeaders/bin', type: 'pax-header' as never, size: pax.length }]);
  // Build [pax header block + pax data] + [file header + data] + end by hand from tar-stream's header encoder.
  const fileTar = await tarOf([{ name: 'bin', type: 'file', mode: 0o755, mtime: MTIME, content: body.toString() }]);
  const block = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
  const paxBlock = Buffer.from(paxHeader.subarray(0, 512));
  paxBlock[156] = 0x78; // typeflag 'x'
  paxBlock.write(pax.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  let sum = 0;
  paxBlock.fill(0x20, 148, 156);
  for (const b of paxBlock) sum += b;
  paxBlock.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const archive = Buffer.concat([paxBlock, block(pax), fileTar]);
  await unpackLayer(Readable.from([archive]), dir, 'caps');
  t.same(xattr(path.join(dir, 'bin'), 'security.capability'), cap, 'exact bytes, 0x80 included');
  const getcap = spawnSync('getcap', [path.join(dir, 'bin')], { encoding: 'utf8' });
  if (getcap.status === 0) t.match(getcap.stdout, /cap_setuid/);
});

t.test('gzip layers, overlay whiteouts and opaque directories', async (t) => {
  const dir = tempDir(t, 'tsrun-layer-');
  const archive = await tarOf([
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/.wh.motd', type: 'file', content: '' },
    { name: 'var/cache/.wh..wh..opq', type: 'file', content: '' },
    { name: '.wh.tmp', type: 'file', content: '' },
  ]);
  const r = await unpackLayer(Readable.from([zlib.gzipSync(archive)]), dir, 'layer gz');
  t.equal(
    r.diffID,
    `sha256:${createHash('sha256').update(archive).digest('hex')}`,
    'the diffID is of the uncompressed tar',
  );
  const motd = fs.lstatSync(path.join(dir, 'etc/motd'));
  t.ok(motd.isCharacterDevice() && motd.rdev === 0, '.wh.motd: a 0/0 character device named motd');
  t.notOk(fs.existsSync(path.join(dir, 'etc/.wh.motd')), 'the marker itself is not written');
  t.ok(fs.lstatSync(path.join(dir, 'tmp')).isCharacterDevice(), 'a whiteout at the root');
  t.equal(xattr(path.join(dir, 'var/cache'), 'trusted.overlay.opaque')?.toString(), 'y', 'opaque directory');
});

t.test('hostile archives are contained or refused, nothing written outside', async (t) => {
  const base = tempDir(t, 'tsrun-layer-');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'victim'), 'original');
  const cases: Array<[string, Entry[], RegExp | null, (dir: string) => void]> = [
    [
      '../ traversal',
      [{ name: '../../outside/victim', type: 'file', content: 'pwned' }],
      null,
      (dir) =>
        t.equal(fs.readFileSync(path.join(dir, 'outside/victim'), 'utf8'), 'pwned', 'written inside the layer instead'),
    ],
    [
      'an absolute name',
      [{ name: `${outside}/victim`, type: 'file', content: 'pwned' }],
      null,
      (dir) => t.ok(fs.existsSync(path.join(dir, outside.slice(1), 'victim')), 'written inside the layer instead'),
    ],
    [
      'a file through a symlink',
      [
        { name: 'link', type: 'symlink', linkname: outside },
        { name: 'link/victim', type: 'file', content: 'pwned' },
      ],
      /link\/victim: a parent is a symlink/,
      () => {},
    ],
    [
      'a relative symlink out, then a file through it',
      [
        { name: 'up', type: 'symlink', linkname: '../../../../../..' + outside },
        { name: 'up/new', type: 'file', content: 'pwned' },
      ],
      /up\/new: a parent is a symlink/,
      () => {},
    ],
    [
      'a hardlink to a host file',
      [{ name: 'hl', type: 'link', linkname: '/etc/passwd' }],
      /hl: hardlink to an earlier entry of this layer: no such file or directory/i,
      () => {},
    ],
    [
      'a hardlink through a symlink',
      [
        { name: 'link', type: 'symlink', linkname: outside },
        { name: 'hl', type: 'link', linkname: 'link/victim' },
      ],
      /hl: hardlink to an earlier entry of this layer/,
      () => {},
    ],
    ['a whiteout that names nothing', [{ name: 'a/.wh.', type: 'file' }], /a whiteout must name a file/, () => {}],
  ];
  for (const [what, entries, refused, check] of cases) {
    const dir = path.join(base, `layer-${what.replace(/\W+/g, '-')}`);
    fs.mkdirSync(dir);
    const archive = await tarOf(entries);
    let error: Error | undefined;
    try {
      await unpackLayer(Readable.from([archive]), dir, 'hostile');
    } catch (err) {
      error = err as Error;
    }
    if (refused) t.match(error?.message ?? '', refused, `${what}: refused`);
    else t.equal(error, undefined, `${what}: contained`);
    check(dir);
    t.equal(
      fs.readFileSync(path.join(outside, 'victim'), 'utf8'),
      'original',
      `${what}: the outside file is untouched`,
    );
    t.same(fs.readdirSync(outside), ['victim'], `${what}: nothing new outside`);
  }
});

t.test('zstd is refused by name; a truncated layer is an error', async (t) => {
  const dir = tempDir(t, 'tsrun-layer-');
  const zstd = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(64)]);
  await t.rejects(
    unpackLayer(Readable.from([zstd]), dir, 'layer z'),
    /layer z: zstd-compressed layers \(application\/vnd\.oci\.image\.layer\.v1\.tar\+zstd\) are not supported/,
  );
  const archive = await tarOf([{ name: 'big', type: 'file', content: 'x'.repeat(5000) }]);
  const dir2 = tempDir(t, 'tsrun-layer-');
  await t.rejects(unpackLayer(Readable.from([archive.subarray(0, 2048)]), dir2, 'layer cut'), /layer cut/);
  const gz = zlib.gzipSync(archive);
  const dir3 = tempDir(t, 'tsrun-layer-');
  await t.rejects(unpackLayer(Readable.from([gz.subarray(0, gz.length - 30)]), dir3, 'layer gz cut'), /layer gz cut/);
});
