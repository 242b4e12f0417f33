/**
 * Issue 14, finding 8: a layer's PAX records may carry any xattr, and
 * overlayfs's own control attributes among them are instructions to the
 * kernel that assembles a container's rootfs, not metadata of a file: a
 * directory "bin2" carrying trusted.overlay.redirect=/etc showed /etc's
 * files as /bin2 in a container of the image (overlayfs follows redirects
 * in lower layers).  The importer now drops every trusted.overlay.* and
 * user.overlay.* attribute of a layer with a warning naming it, while the
 * OCI form of an opaque directory (.wh..wh..opq), which the unpacker turns
 * into overlay's own attribute itself, keeps working, and other xattrs
 * (here user.*) are kept.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { cleanupContainer, IS_ROOT, mountsUnder, tarOf, tempDir, tsrun, uniqueId } from '../helpers';
import { baseLayer, dockerArchive, hex, image, imageOf } from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'image tests need root (trusted xattrs, overlay mounts)');
  process.exit(0);
}

/** The xattr names of `file` (python3's os.listxattr: neither getfattr nor the addon lists them). */
function xattrNames(file: string): string[] {
  const r = spawnSync(
    'python3',
    ['-c', 'import os,sys,json;print(json.dumps(os.listxattr(sys.argv[1],follow_symlinks=False)))', file],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`listxattr ${file}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as string[];
}

t.test("a layer's overlay control xattrs are dropped with a warning; .wh..wh..opq still works", async (t) => {
  const work = tempDir(t, 'tsrun-ovlx-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  const hostile = await tarOf([
    // Shown as /etc by overlayfs if the redirects reach the layer directory.
    {
      name: 'bin2/',
      type: 'directory',
      mode: 0o755,
      pax: {
        'SCHILY.xattr.trusted.overlay.redirect': '/etc',
        'SCHILY.xattr.user.overlay.redirect': '/etc',
        'SCHILY.xattr.user.note': 'kept',
      },
    },
    // Would hide the base layer's /etc (passwd and all) if it reached the layer directory.
    { name: 'etc/', type: 'directory', mode: 0o755, pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } },
    { name: 'etc/extra', type: 'file', mode: 0o644, content: 'extra\n' },
    // The OCI way to say what trusted.overlay.opaque says: converted by the unpacker itself.
    { name: 'var/', type: 'directory', mode: 0o755 },
    { name: 'var/.wh..wh..opq', type: 'file', content: '' },
    { name: 'var/only', type: 'file', mode: 0o644, content: 'only this in /var\n' },
  ]);
  const img = imageOf([baseLayer(), hostile], { Cmd: ['/bin/sh'] });
  fs.writeFileSync(path.join(work, 'hostile.tar'), await dockerArchive(img, 'hostile/ovl:1'));

  const imported = image(store, ['import', path.join(work, 'hostile.tar')]);
  t.equal(imported.status, 0, imported.stderr);
  const warnings = imported.stderr.split('\n').filter((l) => l.startsWith('tsrun: warning: '));
  t.same(
    warnings,
    [
      'tsrun: warning: layer 2 (l1/layer.tar): bin2: dropped trusted.overlay.redirect, user.overlay.redirect: overlayfs control xattrs are not taken from a layer',
      'tsrun: warning: layer 2 (l1/layer.tar): etc: dropped trusted.overlay.opaque: overlayfs control xattrs are not taken from a layer',
    ],
    'one warning per entry, naming the layer, the entry and each attribute',
  );
  t.equal(imported.stderr, warnings.map((w) => `${w}\n`).join(''), 'and nothing else on stderr');

  const layer = path.join(store, 'layers', hex(img.diffIDs[1]));
  t.same(
    xattrNames(path.join(layer, 'bin2')).filter((n) => /^(trusted|user)\.overlay\./.test(n)),
    [],
    'bin2 in the layer has no overlay xattr',
  );
  t.ok(xattrNames(path.join(layer, 'bin2')).includes('user.note'), 'an ordinary xattr of the same entry is kept');
  t.same(
    xattrNames(path.join(layer, 'etc')).filter((n) => /^(trusted|user)\.overlay\./.test(n)),
    [],
    'etc in the layer is not opaque',
  );
  t.ok(xattrNames(path.join(layer, 'var')).includes('trusted.overlay.opaque'), '.wh..wh..opq still makes var opaque');

  const id = uniqueId('ovlx');
  cleanupContainer(t, root, id);
  const r = tsrun(root, [
    'run',
    '--image',
    'hostile/ovl:1',
    '--store',
    store,
    id,
    '--',
    'sh',
    '-c',
    'ls -A /bin2; echo ==; ls /etc; echo ==; ls /var',
  ]);
  t.equal(r.status, 0, r.stderr);
  const [bin2, etc, varDir] = r.stdout.split('==\n');
  t.equal(bin2, '', '/bin2 is the empty directory of the layer, not /etc');
  t.match(etc, /^passwd$/m, "/etc still shows the base layer's files");
  t.match(etc, /^extra$/m, 'and the new one');
  t.equal(varDir, 'only\n', "/var shows only the layer's file: the opaque marker works");
  t.notOk(fs.existsSync(path.join(root, id)), 'the container is gone');
  t.same(mountsUnder(work), [], 'its rootfs unmounted');
  t.same(fs.readdirSync(path.join(store, 'containers')), [], 'and its upper dir removed');
});
