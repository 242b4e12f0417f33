/**
 * Issue 14, finding 6: a container could stall management for 60 s per
 * exec.  exec held the container's lock while its process was set up
 * inside the container's pid namespace; the container SIGSTOPped that
 * process, and delete --force, pause, update and start waited for the lock
 * until the 60 s sync timeout.  runc's delete --force finishes at once
 * under the same attack.
 *
 * The container here stops every new process of its pid namespace as it
 * appears (`kill -STOP -1` in a loop: every process but the caller and the
 * namespace's init).  While an exec is stalled that way:
 *  - pause, resume and update of a running container, and start of a
 *    created one, go through (bounded by 20 s here, against the 60 s they
 *    waited: a hang bound, not a timing target);
 *  - delete --force kills everything and finishes; the stalled exec then
 *    fails, and nothing is left.
 */
import * as fs from 'fs';
import t from 'tap';
import {
  cleanupContainer,
  IS_ROOT,
  leftovers,
  makeBundle,
  type RunResult,
  tsrun,
  tsrunAsync,
  uniqueId,
  waitFor,
} from '../helpers';
import { differsOnPurpose } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

const STOPPER = 'while :; do kill -STOP -1 2>/dev/null; done';
const BOUND = { timeoutMs: 20_000 };

/**
 * Start an exec of `/bin/echo never` and wait until the container's stopper
 * has caught it while tsrun sets it up (the attack: the process is still
 * tsrun-init, before its execve).  On a loaded machine the stopper can be
 * scheduled late: the exec runs to its end, or is caught only after its
 * execve, with "never" already printed.  Such an attempt proves nothing: a
 * process caught after its execve is killed, and the attempt is retried.
 */
async function stalledExec(
  t: { comment(msg: string): void },
  root: string,
  id: string,
): Promise<{ exec: Promise<RunResult> } | null> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    let finished = false;
    const exec = tsrunAsync(root, ['exec', id, '/bin/echo', 'never'], { timeoutMs: 90_000 });
    void exec.then(
      () => {
        finished = true;
      },
      () => {
        finished = true;
      },
    );
    let caught: Stopped | undefined;
    await waitFor(() => finished || (caught = stoppedProcess(containerPids(root, id))) !== undefined, 10_000);
    // Wrapped: an async function would otherwise wait for the exec itself.
    if (caught?.inSetup && !finished) return { exec };
    if (caught && !caught.inSetup) process.kill(caught.pid, 'SIGKILL');
    const r = await exec;
    t.comment(`attempt ${attempt}: the exec was not caught in its set-up (status ${r.status}); trying again`);
  }
  return null;
}

interface Stopped {
  pid: number;
  /** Still tsrun-init (the helper names itself so until its execve). */
  inSetup: boolean;
}

function stoppedProcess(pids: number[]): Stopped | undefined {
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) continue;
      return { pid, inSetup: fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tsrun-init' };
    } catch {
      // gone
    }
  }
  return undefined;
}

function containerPids(root: string, id: string): number[] {
  const r = tsrun(root, ['ps', '--format', 'json', id]);
  return r.status === 0 ? (JSON.parse(r.stdout) as number[]) : [];
}

t.test('running container: pause, resume, update and delete --force do not wait for an exec it stalls', async (t) => {
  differsOnPurpose(t, 'delete-force-kills-first');
  const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', `${STOPPER} & exec sleep 1000`]);
  const id = uniqueId('stall');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]).status, 0);
  const stalled = await stalledExec(t, bundle.root, id);
  if (!t.ok(stalled, "an exec's process is stopped by the container") || !stalled) return;
  const exec = stalled.exec;

  const pause = tsrun(bundle.root, ['pause', id], BOUND);
  t.equal(pause.status, 0, `pause goes through: ${pause.signal ?? pause.stderr}`);
  const resume = tsrun(bundle.root, ['resume', id], BOUND);
  t.equal(resume.status, 0, `resume goes through: ${resume.signal ?? resume.stderr}`);
  const update = tsrun(bundle.root, ['update', '--pids-limit', '500', id], BOUND);
  t.equal(update.status, 0, `update goes through: ${update.signal ?? update.stderr}`);
  const del = tsrun(bundle.root, ['delete', '--force', id], BOUND);
  t.equal(del.status, 0, `delete --force goes through: ${del.signal ?? del.stderr}`);

  const r = await exec;
  t.not(r.status, 0, 'the stalled exec fails once its container is gone');
  t.notMatch(r.stdout, /never/, 'its program never ran');
  t.ok(
    await waitFor(() => leftovers(bundle, id).length === 0, 10_000),
    `nothing left: ${leftovers(bundle, id).join(', ')}`,
  );
});

t.test('created container: start does not wait for an exec stalled in it', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/echo', 'started']);
  const id = uniqueId('stallstart');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['create', '-b', bundle.dir, id]).status, 0);
  // The stopper runs as an exec of its own, in the created container's pid namespace.
  t.equal(tsrun(bundle.root, ['exec', '--detach', id, '/bin/sh', '-c', STOPPER]).status, 0);
  const stalled = await stalledExec(t, bundle.root, id);
  if (!t.ok(stalled, "an exec's process is stopped by the container") || !stalled) return;
  const exec = stalled.exec;
  const start = tsrun(bundle.root, ['start', id], BOUND);
  t.equal(start.status, 0, `start goes through: ${start.signal ?? start.stderr}`);
  const del = tsrun(bundle.root, ['delete', '--force', id], BOUND);
  t.equal(del.status, 0, `delete --force goes through: ${del.signal ?? del.stderr}`);
  const r = await exec;
  t.not(r.status, 0, 'the stalled exec fails once its container is gone');
  t.ok(
    await waitFor(() => leftovers(bundle, id).length === 0, 10_000),
    `nothing left: ${leftovers(bundle, id).join(', ')}`,
  );
});
