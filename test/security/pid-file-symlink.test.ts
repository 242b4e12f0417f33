/**
 * Issue 14, finding 5: --pid-file wrote through a planted symlink.  The
 * temp file beside the pid file was ".<name>.<pid of tsrun>", predictable,
 * and opened without O_EXCL, so anyone who can write the pid file's
 * directory (a shared /run/user dir, a sticky tmp dir) could make root
 * truncate and overwrite any file.
 *
 * Here a directory holds a symlink to a host file at every name the old
 * scheme could pick for the next 600 pids, and the pid file's own name is
 * a symlink to the same file too.  For create, run --detach and exec
 * --detach: the host file is unchanged, the pid file is a regular file
 * holding the process's pid, and the planted names are untouched (they are
 * not ours to remove).  Each attempt counts only when tsrun's pid fell in
 * the planted window (the old code would have written through the link);
 * on a machine busy enough to pass it by, the attempt is made again.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { cleanupContainer, IS_ROOT, makeBundle, tsrun, uniqueId } from '../helpers';
import { differsOnPurpose } from '../compat-helpers';
import { hostDir, runningContainer } from '../security-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

const PRECIOUS = 'precious host data\n';
const WINDOW = 600;

/** A world-writable dir with symlinks to a host file at ".NAME.PID" for the next WINDOW pids, and at NAME itself. */
function plantedDir(t: any, name: string): { dir: string; victim: string; planted: string[] } {
  const base = hostDir(t, 'tsrun-pidfile-');
  const victim = path.join(base, 'victim');
  fs.writeFileSync(victim, PRECIOUS);
  const dir = path.join(base, 'shared');
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o1777);
  const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
  const planted = [name];
  for (let pid = last + 1; pid <= last + WINDOW; pid++) planted.push(`.${name}.${pid}`);
  for (const p of planted) fs.symlinkSync(victim, path.join(dir, p));
  return { dir, victim, planted };
}

/** Up to 5 attempts, until one whose tsrun had a planted pid; each attempt cleans up after itself. */
async function inWindow(
  t: any,
  attempt: () => Promise<{ pid?: number; planted: string[]; name: string }>,
): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const r = await attempt();
    if (r.planted.includes(`.${r.name}.${r.pid}`)) return;
    t.comment(`tsrun ran as pid ${r.pid}, past the planted window: again`);
  }
  t.fail('tsrun never ran with a planted pid in 5 attempts: the old scheme was not exercised');
}

function checkOutcome(
  t: any,
  where: { dir: string; victim: string; planted: string[] },
  name: string,
  pid: number,
  what: string,
): void {
  t.equal(fs.readFileSync(where.victim, 'utf8'), PRECIOUS, `${what}: the host file the symlinks point at is unchanged`);
  const st = fs.lstatSync(path.join(where.dir, name));
  t.ok(st.isFile(), `${what}: the pid file is a regular file, not the planted symlink`);
  t.equal(fs.readFileSync(path.join(where.dir, name), 'utf8'), String(pid), `${what}: it holds the pid`);
  const left = where.planted
    .slice(1)
    .filter((p) => fs.lstatSync(path.join(where.dir, p), { throwIfNoEntry: false })?.isSymbolicLink());
  t.equal(left.length, WINDOW, `${what}: the planted symlinks are left alone`);
  t.same(
    fs.readdirSync(where.dir).filter((n) => !where.planted.includes(n) && n !== name),
    [],
    `${what}: no temp file left`,
  );
}

t.test('create --pid-file and run --detach --pid-file never write through a planted symlink', async (t) => {
  differsOnPurpose(t, 'pid-file-temp-name');
  for (const verb of ['create', 'run']) {
    await inWindow(t, async () => {
      const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
      const where = plantedDir(t, 'container.pid');
      const id = uniqueId('pidfile');
      cleanupContainer(t, bundle.root, id);
      const args = verb === 'run' ? ['run', '--detach'] : ['create'];
      const r = tsrun(bundle.root, [
        ...args,
        '--pid-file',
        path.join(where.dir, 'container.pid'),
        '-b',
        bundle.dir,
        id,
      ]);
      t.equal(r.status, 0, `${verb}: ${r.stderr}`);
      const pid = JSON.parse(tsrun(bundle.root, ['state', id]).stdout).pid as number;
      checkOutcome(t, where, 'container.pid', pid, verb);
      t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
      return { pid: r.pid, planted: where.planted, name: 'container.pid' };
    });
  }
});

t.test('exec --detach --pid-file never writes through a planted symlink', async (t) => {
  const { bundle, id } = runningContainer(t, () => {}, ['/bin/sleep', '1000']);
  await inWindow(t, async () => {
    const where = plantedDir(t, 'exec.pid');
    const r = tsrun(bundle.root, [
      'exec',
      '--detach',
      '--pid-file',
      path.join(where.dir, 'exec.pid'),
      id,
      '/bin/sleep',
      '1000',
    ]);
    t.equal(r.status, 0, r.stderr);
    const pid = Number(fs.readFileSync(path.join(where.dir, 'exec.pid'), 'utf8'));
    t.ok(
      pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/bin/sleep'),
      "the pid is the exec'd process",
    );
    checkOutcome(t, where, 'exec.pid', pid, 'exec');
    return { pid: r.pid, planted: where.planted, name: 'exec.pid' };
  });
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
});
