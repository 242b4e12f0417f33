/**
 * Issue 14, "keep them that way": attacks tried alongside its findings
 * that tsrun already contained, pinned here so they stay contained.
 *  - An image whose /etc/passwd is a symlink to a host path (absolute or
 *    climbing with ..): the host file is never read for user names; the
 *    error names the symlink, and nothing is left.
 *  - Ids: 1024 characters is runc's and tsrun's limit, but a directory
 *    name (state dir, cgroup) stops at 255; past that, a clear error and
 *    nothing left, and 255 still runs.
 *  - A fork bomb under a pids limit: delete --force, which freezes the
 *    cgroup before it signals, leaves no process and no cgroup.
 * (Leaked fds and /proc/self/fd cwds are cve-2024-21626's; hostile layers
 * and archives are image-import's and layer-unpack's.)
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { cleanupContainer, IS_ROOT, leftovers, makeBundle, tarOf, tempDir, tsrun, waitFor } from '../helpers';
import { baseLayer, dockerArchive, image, imageOf } from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

t.test('an image /etc/passwd that is a symlink to a host file is never read through', async (t) => {
  const work = tempDir(t, 'tsrun-contained-');
  const store = path.join(work, 'store');
  const root = path.join(work, 'state');
  // A host file with a user the image does not have: found only by following the link.
  const hostPasswd = path.join(work, 'host-passwd');
  fs.writeFileSync(hostPasswd, 'hostonly:x:4242:4242::/:/bin/sh\n');
  for (const [tag, target] of [
    ['absolute', hostPasswd],
    ['climbing', `../../../../../../..${hostPasswd}`],
  ]) {
    const layer = await tarOf([
      { name: 'etc/', type: 'directory', mode: 0o755 },
      { name: 'etc/passwd', type: 'symlink', linkname: target },
    ]);
    fs.writeFileSync(
      path.join(work, `${tag}.tar`),
      await dockerArchive(imageOf([baseLayer(), layer], { Cmd: ['/bin/id'] }), `passwd/${tag}:1`),
    );
    t.equal(image(store, ['import', path.join(work, `${tag}.tar`)]).status, 0);
    const id = `contained-${tag}-${process.pid}`;
    cleanupContainer(t, root, id);
    const r = tsrun(root, ['run', '--image', `passwd/${tag}:1`, '--store', store, '--user', 'hostonly', id]);
    t.not(r.status, 0, `${tag}: refused`);
    t.match(
      r.stderr,
      /the image's \/etc\/passwd is a symlink; cannot read it/,
      `${tag}: names the symlink: ${r.stderr.trim()}`,
    );
    t.notMatch(r.stdout, /4242/, `${tag}: the host file's user was never used`);
    t.notOk(fs.existsSync(path.join(root, id)), `${tag}: nothing left`);
  }
});

t.test('ids: past what a directory name holds, a clear error and nothing left; 255 characters still run', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/true']);
  for (const length of [256, 1024, 1025]) {
    const id = 'x'.repeat(length);
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.not(r.status, 0, `${length} characters: refused`);
    t.equal(
      r.stderr.split('\n').filter(Boolean).length,
      1,
      `${length} characters: one line: ${r.stderr.slice(0, 160)}...`,
    );
    t.same(leftovers(bundle, id), [], `${length} characters: nothing left`);
  }
  const id = 'y'.repeat(255);
  cleanupContainer(t, bundle.root, id);
  const ok = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.equal(ok.status, 0, `255 characters run: ${ok.stderr.slice(0, 200)}`);
  t.same(leftovers(bundle, id), []);
});

t.test('a fork bomb under a pids limit: delete --force leaves nothing', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.resources = { pids: { limit: 64 } };
    },
    ['/bin/sh', '-c', '(while :; do sleep 1000 & done) 2>/dev/null & exec sleep 1000'],
  ); // forks until the limit stops it
  const id = `bomb-${process.pid}`;
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]).status, 0);
  const pids = (): number => {
    const ps = tsrun(bundle.root, ['ps', '--format', 'json', id]);
    return ps.status === 0 ? (JSON.parse(ps.stdout) as number[]).length : 0;
  };
  t.ok(await waitFor(() => pids() >= 60, 10_000), 'the bomb fills its pids limit');
  const del = tsrun(bundle.root, ['delete', '--force', id], { timeoutMs: 30_000 });
  t.equal(del.status, 0, `delete --force: ${del.stderr}`);
  t.same(leftovers(bundle, id), [], 'no process, cgroup or state left');
});
