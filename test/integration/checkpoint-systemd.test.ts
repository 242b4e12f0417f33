/**
 * checkpoint and restore of a container placed by systemd (--systemd-cgroup):
 * the restore's transient scope is started with CRIU's pid in it, as
 * create's is with the helper's, and the restored tree is born there.  Run
 * where systemd is PID 1 and CRIU works: the systemd VM (scripts/test.sh).
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';
import t from 'tap';
import { IS_ROOT, leftovers, TSRUN, tsrun, uniqueId, waitFor } from '../helpers';
import { counterBundle, criuWorks, detachedWithPipes, firstCount, lastCount } from '../criu-helpers';

const systemdIsInit = fs.existsSync('/run/systemd/system');
if (!IS_ROOT || !criuWorks || !systemdIsInit) {
  t.plan(0, 'needs root, systemd as PID 1 and a kernel CRIU works with: the systemd VM');
  process.exit(0);
}

const scopeState = (unit: string): string =>
  spawnSync('systemctl', ['show', '-p', 'ActiveState', '--value', unit], { encoding: 'utf8' }).stdout.trim();

t.test('a container in a systemd scope, checkpointed and restored into a new scope', async (t) => {
  const bundle = counterBundle(t);
  const id = uniqueId('cksd');
  const unit = `tsrun-${id}.scope`;
  const sd = (args: string[]): ReturnType<typeof tsrun> =>
    tsrun(bundle.root, ['--systemd-cgroup', ...args], { timeoutMs: 180_000 });
  t.teardown(() => void sd(['delete', '-f', id]));
  const out1 = path.join(bundle.dir, 'out1');
  await detachedWithPipes(
    t,
    [TSRUN, '--systemd-cgroup', '--root', bundle.root, 'run', '-d', '-b', bundle.dir, id],
    out1,
  );
  t.ok(await waitFor(() => lastCount(out1) >= 3, 30_000), 'it counts');
  t.equal(scopeState(unit), 'active', 'in its scope');
  const images = path.join(bundle.dir, 'images');
  const ck = sd(['checkpoint', '--image-path', images, id]);
  t.equal(ck.status, 0, ck.stderr);
  t.not(scopeState(unit), 'active', 'the scope is gone with the container');
  const atCheckpoint = lastCount(out1);
  const out2 = path.join(bundle.dir, 'out2');
  await detachedWithPipes(
    t,
    [TSRUN, '--systemd-cgroup', '--root', bundle.root, 'restore', '-d', '-b', bundle.dir, '--image-path', images, id],
    out2,
  );
  t.ok(await waitFor(() => lastCount(out2) >= atCheckpoint + 2, 60_000), 'it counts on');
  t.equal(firstCount(out2), atCheckpoint + 1);
  const pid = JSON.parse(sd(['state', id]).stdout).pid as number;
  t.match(
    fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'),
    new RegExp(`^0::/system\\.slice/${unit.replace(/\./g, '\\.')}$`, 'm'),
    'the restored init is in the new scope',
  );
  t.equal(scopeState(unit), 'active');
  t.equal(sd(['pause', id]).status, 0, 'pause works through the scope');
  t.equal(sd(['resume', id]).status, 0);
  t.equal(sd(['delete', '-f', id]).status, 0);
  t.not(scopeState(unit), 'active', 'delete stops the scope');
  t.same(leftovers(bundle, id), []);
});
