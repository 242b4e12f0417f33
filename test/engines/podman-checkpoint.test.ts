/**
 * podman 4.3's `container checkpoint` and `container restore` with tsrun
 * as its OCI runtime, beside the same with runc (issue 23).  podman asks
 * the runtime `checkpoint --help` to know it can, then runs `checkpoint
 * --image-path --work-path ID` and `restore --detach --pid-file ...
 * --bundle ... --image-path --work-path ID` with conmon's pipes as the
 * container's stdout and stderr and /dev/null as its stdin.
 *
 * Only where CRIU works (the v2 VM: scripts/test.sh); on this host CRIU's
 * own check fails and checkpoint.test.ts shows the refusal.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import t from 'tap';
import { IS_ROOT, runCommand, type RunResult, waitFor } from '../helpers';
import {
  busyboxArchive,
  IMAGE,
  pathsMadeAfter,
  PODMAN_SYSTEM_PATHS,
  podmanStorageFlags,
  podmanTestConf,
  podmanTurn,
  removeCgroupTree,
  runtimeWrapper,
  sentArgv,
} from '../engine-helpers';

if (!IS_ROOT || runCommand(['podman', '--version']).status !== 0) {
  t.plan(0, 'needs root and podman (scripts/setup.sh installs it)');
  process.exit(0);
}
if (spawnSync('criu', ['check']).status !== 0) {
  t.plan(0, "CRIU cannot work on this kernel (its check fails): run in the VM (scripts/test.sh's v2 phase)");
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-podman-ckpt-'));
const cgroupParent = `/tsrun-podman-ckpt-${process.pid}`;
const argvLog = path.join(work, 'argv.log');
const wrapper = runtimeWrapper(path.join(work, 'bin'), 'tsrun', path.join(work, 'tsrun-state'), argvLog);
const conf = podmanTestConf(path.join(work, 'containers.conf'), wrapper, 'cgroupfs');
const base = ['podman', ...podmanStorageFlags(work)];
const podman = (args: string[], runtime?: string): RunResult =>
  runCommand([...base, ...(runtime ? ['--runtime', runtime] : []), ...args], {
    env: { CONTAINERS_CONF: conf },
    timeoutMs: 240_000,
    cwd: work,
  });

const endTurn = podmanTurn();
const removeMadePaths = pathsMadeAfter(PODMAN_SYSTEM_PATHS);
t.teardown(() => {
  podman(['rm', '--all', '--force', '--time', '0']);
  runCommand([...base, 'system', 'reset', '--force'], { env: { CONTAINERS_CONF: conf }, cwd: work });
  removeMadePaths();
  endTurn();
  fs.rmSync(work, { recursive: true, force: true });
  const left = removeCgroupTree(cgroupParent);
  if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
});

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done';
const lastLine = (text: string): number => Number(text.trim().split('\n').pop() || 0);

t.test('podman container checkpoint and restore: the container goes on where it stopped, as with runc', async (t) => {
  const archive = await busyboxArchive(path.join(work, 'busybox.tar'));
  t.equal(podman(['load', '-q', '-i', archive]).status, 0, 'the image loads');
  const seen: Record<string, unknown> = {};
  for (const runtime of ['runc', wrapper]) {
    const name = runtime === 'runc' ? 'runc' : 'tsrun';
    const c = `ckpt-${name}`;
    const run = podman(
      ['run', '-d', '--name', c, '--network', 'none', '--cgroup-parent', cgroupParent, IMAGE, 'sh', '-c', COUNTER],
      runtime,
    );
    t.equal(run.status, 0, `${name}: run: ${run.stderr}`);
    t.ok(await waitFor(() => lastLine(podman(['logs', c]).stdout) >= 5, 60_000), `${name}: it counts`);
    const ck = podman(['container', 'checkpoint', c], runtime);
    t.equal(ck.status, 0, `${name}: checkpoint: ${ck.stderr}`);
    const atCheckpoint = lastLine(podman(['logs', c]).stdout);
    const statusAfter = podman(['inspect', '-f', '{{.State.Status}}', c]).stdout.trim();
    const rs = podman(['container', 'restore', c], runtime);
    t.equal(rs.status, 0, `${name}: restore: ${rs.stderr}`);
    const goesOn = await waitFor(() => lastLine(podman(['logs', c]).stdout) >= atCheckpoint + 3, 60_000);
    const logs = podman(['logs', c]).stdout.trim().split('\n').map(Number);
    seen[name] = {
      checkpointExit: ck.status,
      statusAfterCheckpoint: statusAfter,
      restoreExit: rs.status,
      status: podman(['inspect', '-f', '{{.State.Status}}', c]).stdout.trim(),
      goesOn,
      // One count, no line twice and none lost: the restored process writes to conmon's new pipes.
      logsInOrder: logs.every((n, i) => n === i + 1),
      exec: podman(['exec', c, 'echo', 'in'], runtime).stdout.trim(),
    };
    t.equal(podman(['rm', '-f', '-t', '0', c], runtime).status, 0, `${name}: rm`);
  }
  t.same(seen.tsrun, seen.runc, 'tsrun as runc');
  t.match(seen.tsrun, {
    checkpointExit: 0,
    statusAfterCheckpoint: 'exited',
    restoreExit: 0,
    status: 'running',
    goesOn: true,
    logsInOrder: true,
    exec: 'in',
  });
  // What podman sent: `checkpoint --image-path DIR --work-path DIR ID`, `restore ... --image-path DIR ... ID`.
  const sent = sentArgv(argvLog);
  t.ok(
    sent.some((a) => a.startsWith('checkpoint --image-path ')),
    'podman ran tsrun checkpoint',
  );
  t.ok(
    sent.some((a) => a.startsWith('restore ') && a.includes('--image-path ')),
    `podman ran tsrun restore: ${sent.filter((a) => a.startsWith('restore')).join(' | ')}`,
  );
});
