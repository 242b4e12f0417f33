/**
 * Kubernetes' path to a runtime: a kubelet's CRI calls to containerd's CRI
 * plugin, whose runtime handler runs the io.containerd.runc.v2 shim with
 * tsrun as its runc binary (a RuntimeClass "tsrun").  test/cri-helpers.ts
 * makes the node: a private containerd in a network namespace of the
 * test's own, CNI bridge networking there, the pause and busybox images.
 * Every scenario runs twice, on the handler "runc" (Debian's runc 1.1.5)
 * and on "tsrun", in the same daemon, and what a kubelet can see of the
 * two runs is compared.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BuiltPlugins, Test } from '@tapjs/test';
import t from 'tap';
import { IS_ROOT, runCommand, waitFor } from '../helpers';
import {
  CGROUP_MANAGER,
  cgroupKnobs,
  hostCgroupDir,
  pathsMadeAfter,
  processesWith,
  removeCgroupTree,
  unitsMatching,
} from '../engine-helpers';
import { BUSYBOX, type CriNode, HANDLERS, type Handler, POD_SUBNET, readCriLog, startCriNode } from '../cri-helpers';

if (
  !IS_ROOT ||
  runCommand(['containerd', '--version']).status !== 0 ||
  runCommand(['sh', '-c', 'command -v musl-gcc && test -x /usr/lib/cni/bridge']).status !== 0
) {
  t.plan(0, 'needs root, containerd, musl-gcc and the CNI plugins (scripts/setup.sh --engines installs them)');
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-cri-'));
let node: CriNode;
/** Every sandbox the test made, for the clean-up of what a failed run may leave (CNI's cached results). */
const podIds = new Set<string>();
const SYSTEMD = CGROUP_MANAGER === 'systemd';

const removeMadePaths = pathsMadeAfter([
  '/run/containerd/s',
  '/run/containerd/fifo',
  '/run/containerd/runc',
  '/run/containerd',
  '/var/lib/cni/results',
  '/var/lib/cni',
]);

t.teardown(async () => {
  if (node) {
    for (const pod of (await node.cri.call('ListPodSandbox').catch(() => ({ items: [] }))).items) {
      await node.cri.call('StopPodSandbox', { pod_sandbox_id: pod.id }).catch(() => {});
      await node.cri.call('RemovePodSandbox', { pod_sandbox_id: pod.id }).catch(() => {});
    }
    await node.stop();
  }
  // Shims outlive containerd by design; any of ours still there is ended by pid.
  for (const pid of processesWith(work)) process.kill(pid, 'SIGKILL');
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(work + '/')) runCommand(['umount', '-l', mp]);
  }
  // CNI's cache of each attachment, removed by the DEL of a pod that was stopped; one that was not leaves it.
  const results = '/var/lib/cni/results';
  for (const f of fs.existsSync(results) ? fs.readdirSync(results) : [])
    if ([...podIds].some((id) => f.includes(id))) fs.rmSync(path.join(results, f), { force: true });
  removeMadePaths();
  fs.rmSync(work, { recursive: true, force: true });
  const left = SYSTEMD ? [] : removeCgroupTree(`/tsrun-cri-${process.pid}`);
  if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
  // The pods' slices (what a kubelet makes and removes itself on a node): systemd made them for the scopes in them.
  if (SYSTEMD) runCommand(['systemctl', 'stop', `tsrun_cri_${process.pid}.slice`]);
  const units = SYSTEMD ? unitsMatching(`tsrun_cri_${process.pid}*`) : [];
  if (units.length) throw new Error(`systemd units left: ${units.join(' ')}`);
});

t.before(async () => {
  node = await startCriNode(work);
});

// --- what a kubelet sends ---

interface Pod {
  id: string;
  handler: Handler;
  name: string;
  config: any;
  logDir: string;
}

/** RunPodSandbox as a kubelet sends it for a pod NAME on HANDLER's RuntimeClass. */
async function runPod(handler: Handler, name: string, mutate: (c: any) => void = () => {}): Promise<Pod> {
  const full = `${handler}-${name}`;
  const logDir = path.join(work, 'logs', full);
  fs.mkdirSync(logDir, { recursive: true });
  const config: any = {
    metadata: { name: full, uid: `uid-${full}`, namespace: 'tsrun-test', attempt: 0 },
    hostname: full,
    log_directory: logDir,
    labels: { app: name },
    linux: {
      cgroup_parent: node.cgroupParent(full),
      security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
  mutate(config);
  const r = await node.cri.call('RunPodSandbox', { config, runtime_handler: handler });
  podIds.add(r.pod_sandbox_id);
  return { id: r.pod_sandbox_id, handler, name: full, config, logDir };
}

/** The kubelet's default masked and read-only paths (its securitycontext package, procMount Default). */
const KUBELET_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];
const KUBELET_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** CreateContainer and StartContainer of NAME in POD, busybox running CMD; returns the container's id. */
async function runContainer(
  pod: Pod,
  name: string,
  cmd: string[],
  mutate: (c: any) => void = () => {},
  start = true,
): Promise<string> {
  const config: any = {
    metadata: { name, attempt: 0 },
    image: { image: BUSYBOX },
    command: cmd,
    log_path: `${name}.log`,
    linux: {
      resources: {},
      security_context: {
        namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
        // What a kubelet sends for the default procMount (none for a privileged container).
        masked_paths: KUBELET_MASKED_PATHS,
        readonly_paths: KUBELET_READONLY_PATHS,
      },
    },
  };
  mutate(config);
  const { container_id: id } = await node.cri.call('CreateContainer', {
    pod_sandbox_id: pod.id,
    config,
    sandbox_config: pod.config,
  });
  if (start) await node.cri.call('StartContainer', { container_id: id });
  return id;
}

async function status(id: string): Promise<{ status: any; info: any }> {
  const r = await node.cri.call('ContainerStatus', { container_id: id, verbose: true });
  return { status: r.status, info: r.info?.info ? JSON.parse(r.info.info) : {} };
}

async function sandboxInfo(pod: Pod): Promise<{ status: any; info: any }> {
  const r = await node.cri.call('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true });
  return { status: r.status, info: r.info?.info ? JSON.parse(r.info.info) : {} };
}

async function execSync(
  id: string,
  cmd: string[],
  timeout = 30,
): Promise<{ stdout: string; stderr: string; code: number }> {
  const r = await node.cri.call('ExecSync', { container_id: id, cmd, timeout });
  return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), code: r.exit_code };
}

async function waitExited(id: string, timeoutMs = 30_000): Promise<any> {
  let last: any;
  await until(async () => {
    last = (await status(id)).status;
    return last.state === 'CONTAINER_EXITED';
  }, timeoutMs);
  return last;
}

async function removePod(pod: Pod): Promise<void> {
  await node.cri.call('StopPodSandbox', { pod_sandbox_id: pod.id });
  await node.cri.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
}

type TestApi = Test & BuiltPlugins;

/** waitFor for a condition that needs a CRI call. */
async function until(pred: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return pred();
}

const nsOf = (pid: number, kind: string): string => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

/** The same scenario on both handlers, runc first; the observations must be the same. */
async function onBoth<T>(t: TestApi, what: string, scenario: (h: Handler) => Promise<T>): Promise<T> {
  const seen: Record<string, T> = {};
  for (const h of HANDLERS) seen[h] = await scenario(h);
  t.same(seen.tsrun, seen.runc, `${what}: tsrun as runc`);
  t.comment(`${what}, as seen on tsrun: ${JSON.stringify(seen.tsrun)}`);
  return seen.tsrun;
}

t.test('a pod with a sidecar: shared network, IPC and UTS namespaces and a shared volume', async (t) => {
  const seen = await onBoth(t, 'sidecar pod', async (h) => {
    const pod = await runPod(h, 'sidecar');
    const volume = path.join(work, `${h}-shared`);
    fs.mkdirSync(volume);
    const shared = (c: any): void => {
      c.mounts = [{ container_path: '/shared', host_path: volume }];
    };
    const app = await runContainer(
      pod,
      'app',
      [
        'sh',
        '-c',
        'mkdir /www && echo pong > /www/index.html && echo written-by-app > /shared/note && ' +
          'echo ipc-by-app > /dev/shm/note && exec httpd -f -p 8080 -h /www',
      ],
      shared,
    );
    const sidecar = await runContainer(
      pod,
      'sidecar',
      [
        'sh',
        '-c',
        'until wget -q -O - http://127.0.0.1:8080/; do sleep 0.1; done; ' +
          'until test -e /shared/note; do sleep 0.1; done; cat /shared/note; exec sleep 3600',
      ],
      shared,
    );
    const sidecarLog = path.join(pod.logDir, 'sidecar.log');
    t.ok(
      await waitFor(() => readCriLog(sidecarLog).some((l) => l.content === 'written-by-app'), 20_000, 100),
      `${h}: the sidecar reached the app on localhost and read its file`,
    );
    const sandbox = await sandboxInfo(pod);
    const [appInfo, sideInfo] = [(await status(app)).info, (await status(sidecar)).info];
    const pids = { sandbox: sandbox.info.pid, app: appInfo.pid, sidecar: sideInfo.pid };
    const same = (kind: string): boolean =>
      nsOf(pids.app, kind) === nsOf(pids.sandbox, kind) && nsOf(pids.sidecar, kind) === nsOf(pids.sandbox, kind);
    const podIp = sandbox.status.network.ip;
    const result = {
      log: readCriLog(sidecarLog).map((l) => `${l.stream} ${l.tag} ${l.content}`),
      state: sandbox.status.state,
      handler: sandbox.status.runtime_handler === h,
      ipInSubnet: podIp.startsWith(POD_SUBNET.split('.').slice(0, 3).join('.') + '.'),
      sharedNet: same('net'),
      sharedIpc: same('ipc'),
      sharedUts: same('uts'),
      ownPid: nsOf(pids.app, 'pid') !== nsOf(pids.sidecar, 'pid'),
      ownMnt: nsOf(pids.app, 'mnt') !== nsOf(pids.sidecar, 'mnt'),
      notHostNet: nsOf(pids.app, 'net') !== nsOf(process.pid, 'net'),
      hostname: (await execSync(sidecar, ['hostname'])).stdout.trim() === pod.name,
      shm: (await execSync(sidecar, ['cat', '/dev/shm/note'])).stdout,
      podIpServes: (await execSync(sidecar, ['wget', '-q', '-O', '-', `http://${podIp}:8080/`])).stdout,
      eth0HasPodIp: (await execSync(app, ['ip', '-4', 'addr', 'show', 'eth0'])).stdout.includes(`inet ${podIp}/`),
      volumeOnHost: fs.readFileSync(path.join(volume, 'note'), 'utf8'),
    };
    await removePod(pod);
    return result;
  });
  t.match(
    seen,
    {
      log: ['stdout F pong', 'stdout F written-by-app'],
      state: 'SANDBOX_READY',
      handler: true,
      ipInSubnet: true,
      sharedNet: true,
      sharedIpc: true,
      sharedUts: true,
      ownPid: true,
      ownMnt: true,
      notHostNet: true,
      hostname: true,
      shm: 'ipc-by-app\n',
      podIpServes: 'pong\n',
      eth0HasPodIp: true,
      volumeOnHost: 'written-by-app\n',
    },
    'the sidecar shares the network, IPC and UTS namespaces and the volume, and has its own pid and mount namespaces',
  );
});

/**
 * cpu shares as the cgroup file shows them: cpu.shares on v1, or cpu.weight on v2, converted as runc converts them
 * (runtime-spec's cgroup v2 mapping, 2..262144 onto 1..10000).
 */
function cpuShares(shares: number): string {
  const v2 = !fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .some((l) => l.split(':')[1]?.split(',').includes('cpu'));
  return String(v2 ? 1 + Math.floor(((shares - 2) * 9999) / 262142) : shares);
}

/** This host's bounding set: what a privileged container gets, all of it. */
const hostBounding = /^CapBnd:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];

/** /proc/1/status of a container, as its own init sees it, in KEY: VALUE pairs. */
async function initStatus(id: string): Promise<Record<string, string>> {
  const text = (await execSync(id, ['cat', '/proc/1/status'])).stdout;
  return Object.fromEntries(text.split('\n').map((l) => l.split(/:\s*/, 2) as [string, string]));
}

t.test(
  'shareProcessNamespace: one pid namespace for the pod, and what an exited container leaves is ended',
  async (t) => {
    const seen = await onBoth(t, 'shared pid namespace', async (h) => {
      const pod = await runPod(h, 'pidns', (c) => {
        c.linux.security_context.namespace_options.pid = 'POD';
      });
      const shared = (c: any): void => {
        c.linux.security_context.namespace_options.pid = 'POD';
      };
      const app = await runContainer(pod, 'app', ['sleep', '3600'], shared);
      // Its init exits at once; the child it leaves lives on in the pod's pid namespace until the runtime's kill --all.
      const job = await runContainer(pod, 'job', ['sh', '-c', 'sleep 3600 & echo $! > /tmp/child; sleep 0.5'], shared);
      const exited = await waitExited(job);
      const ps = (await execSync(app, ['ps', '-o', 'pid,args'])).stdout;
      const orphanGone = await until(
        async () => !/sleep 3600\n[\s\S]*sleep 3600/.test((await execSync(app, ['ps', '-o', 'args'])).stdout),
        10_000,
      );
      const result = {
        pauseIsPid1: /^\s*1 \/pause$/m.test(ps),
        seesOtherContainers: ps.includes('sleep 3600'),
        jobExit: exited.exit_code,
        orphanGone,
      };
      await removePod(pod);
      return result;
    });
    t.same(
      seen,
      { pauseIsPid1: true, seesOtherContainers: true, jobExit: 0, orphanGone: true },
      "the pause is the pod's pid 1, each container sees the others, and an exited container's children are ended",
    );
  },
);

t.test('ExecSync, and Exec streamed through the CRI streaming server, with and without a tty', async (t) => {
  const seen = await onBoth(t, 'exec', async (h) => {
    const pod = await runPod(h, 'exec');
    const id = await runContainer(pod, 'shell', ['sleep', '3600']);
    const sync = await execSync(id, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    const timedOut = await execSync(id, ['sleep', '30'], 1).then(
      (r) => `finished: ${r.code}`,
      (e: Error) => (/timeout 1s exceeded/.test(e.message) ? 'timed out' : e.message),
    );
    const plain = await node.stream(
      (
        await node.cri.call('Exec', {
          container_id: id,
          cmd: ['sh', '-c', 'hostname; echo to-err >&2; exit 4'],
          stdout: true,
          stderr: true,
        })
      ).url,
    );
    const piped = await node.stream(
      (
        await node.cri.call('Exec', {
          container_id: id,
          cmd: ['sh', '-c', 'read line; echo got-$line'],
          stdin: true,
          stdout: true,
          stderr: true,
        })
      ).url,
      { input: ['hello\n'] },
    );
    const ttySession = async () =>
      node.stream(
        (await node.cri.call('Exec', { container_id: id, cmd: ['sh'], tty: true, stdin: true, stdout: true })).url,
        { resize: { Width: 100, Height: 30 }, input: ['echo $((6*7))\n', 'tty; stty size\n', 'exit 5\n'] },
      );
    // One more session when `stty size` fails: the systemd VM once saw busybox's stty get ECHILD ("No child
    // processes") under runc, the reference, on a pts that was there.  Both handlers get the same second chance.
    let tty = await ttySession();
    if (!/30 100\r\n/.test(tty.stdout)) {
      t.comment(`${h}: a second tty session after: ${JSON.stringify(tty.stdout)}`);
      tty = await ttySession();
    }
    const result = {
      sync,
      timedOut,
      // A kubelet's ExecSync after the timeout: the container lives on.
      stillRunning: (await status(id)).status.state,
      plain: { stdout: plain.stdout.trim() === pod.name, stderr: plain.stderr, exitCode: plain.exitCode },
      piped: { stdout: piped.stdout, exitCode: piped.exitCode },
      tty: {
        answered: tty.stdout.includes('42\r\n'),
        onPts: /\/dev\/pts\/\d+\r\n/.test(tty.stdout),
        size: /30 100\r\n/.test(tty.stdout),
        exitCode: tty.exitCode,
        stderr: tty.stderr,
      },
    };
    t.equal(result.sync.code, 3, `${h}: ExecSync's exit code`);
    t.ok(result.tty.answered && result.tty.onPts && result.tty.size, `${h}: the tty session: ${JSON.stringify(tty)}`);
    await removePod(pod);
    return result;
  });
  t.match(
    seen,
    {
      sync: { stdout: 'out\n', stderr: 'err\n', code: 3 },
      timedOut: 'timed out',
      stillRunning: 'CONTAINER_RUNNING',
      plain: { stdout: true, stderr: 'to-err\n', exitCode: 4 },
      piped: { stdout: 'got-hello\n', exitCode: 0 },
      tty: { answered: true, onPts: true, size: true, exitCode: 5, stderr: '' },
    },
    'each stream, the exit codes, stdin, the tty and its size',
  );
});

t.test('status, list and logs; a container that exits is restarted as a new attempt in the same sandbox', async (t) => {
  const seen = await onBoth(t, 'exit and restart', async (h) => {
    const pod = await runPod(h, 'restart');
    const long = 'x'.repeat(20_000);
    const first = await runContainer(
      pod,
      'job',
      // It lives a moment: finishedAt after startedAt holds only for a container still running when the start
      // returns, and a start's return is a few ms later than runc's (the executable's exit), an order that races.
      ['sh', '-c', `echo to-out; echo to-err >&2; printf '%s\\n' ${long}; printf 'no newline'; sleep 0.3; exit 7`],
      (c) => {
        c.log_path = 'job_0.log';
      },
    );
    const exited = await waitExited(first);
    const second = await runContainer(pod, 'job', ['sh', '-c', 'echo second; exit 0'], (c) => {
      c.metadata.attempt = 1;
      c.log_path = 'job_1.log';
    });
    const done = await waitExited(second);
    const listed = (await node.cri.call('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers;
    const log = readCriLog(path.join(pod.logDir, 'job_0.log'));
    const result = {
      first: {
        state: exited.state,
        exitCode: exited.exit_code,
        reason: exited.reason,
        timesInOrder: exited.created_at <= exited.started_at && exited.started_at <= exited.finished_at,
        logPath: exited.log_path === path.join(pod.logDir, 'job_0.log'),
      },
      second: { state: done.state, exitCode: done.exit_code, reason: done.reason },
      listed: listed.map((c: any) => `${c.metadata.name}#${c.metadata.attempt} ${c.state} ${c.image.image}`).sort(),
      // The log: each line with its stream and tag; containerd cuts a line at 16 KiB into P(artial) pieces.
      // stdout and stderr are two pipes: their lines keep their order within each stream only.
      log: ['stdout', 'stderr'].map((stream) =>
        log
          .filter((l) => l.stream === stream)
          .map((l) => `${l.stream} ${l.tag} ${l.content.length > 40 ? `${l.content.length} x` : l.content}`),
      ),
      timestamps: log.every((l) => !Number.isNaN(Date.parse(l.time))),
      secondLog: readCriLog(path.join(pod.logDir, 'job_1.log')).map((l) => `${l.stream} ${l.tag} ${l.content}`),
    };
    t.equal(result.first.exitCode, 7, `${h}: the exit code`);
    await removePod(pod);
    return result;
  });
  t.match(
    seen,
    {
      first: { state: 'CONTAINER_EXITED', exitCode: 7, reason: 'Error', timesInOrder: true, logPath: true },
      second: { state: 'CONTAINER_EXITED', exitCode: 0, reason: 'Completed' },
      listed: [`job#0 CONTAINER_EXITED ${BUSYBOX}`, `job#1 CONTAINER_EXITED ${BUSYBOX}`],
      log: [['stdout F to-out', 'stdout P 16384 x', 'stdout F 3616 x', 'stdout P no newline'], ['stderr F to-err']],
      timestamps: true,
      secondLog: ['stdout F second'],
    },
    'the exit, the restart, the list and the logs in the CRI format',
  );
});

t.test('a container over its memory limit is OOM-killed, and the reason says OOMKilled', async (t) => {
  const seen = await onBoth(t, 'OOM kill', async (h) => {
    const pod = await runPod(h, 'oom');
    // Two races of containerd 1.6's shim, lost under either runtime in the systemd VM (runc's and tsrun's turn by
    // turn), after which a kubelet sees "Error":
    // - it starts watching the cgroup for OOM kills only after the runtime's start has returned, so the hog
    //   allocates after a moment;
    // - on cgroup v2 it reads memory.events when inotify says it changed, and gives up without a word when the file
    //   is gone; systemd removes an emptied scope at once, so an init that is itself the OOM killer's victim may
    //   take its cgroup along before the shim has read the count. The hog is the init's child, and the init
    //   outlives it by a second and exits with its status (137), as a pod's shell wrapper would.
    const hog = 'sleep 2; sh -c "x=aaaaaaaa; while :; do x=\\$x\\$x; done"; s=$?; sleep 1; exit $s';
    const id = await runContainer(pod, 'hog', ['sh', '-c', hog], (c) => {
      c.linux.resources = { memory_limit_in_bytes: 32 * 1024 * 1024 };
    });
    let s = await waitExited(id, 60_000);
    // The shim sends the OOM event and the exit on two paths, in either order: the reason may be set a moment after
    // the state says exited (containerd's CRI sets it whenever the OOM event comes), as a kubelet's next look sees.
    await until(async () => (s = (await status(id)).status).reason === 'OOMKilled', 10_000);
    await removePod(pod);
    return { state: s.state, exitCode: s.exit_code, reason: s.reason };
  });
  t.same(seen, { state: 'CONTAINER_EXITED', exitCode: 137, reason: 'OOMKilled' }, 'OOMKilled, 137');
});

t.test("the pod spec's resource limits, and UpdateContainerResources", async (t) => {
  const seen = await onBoth(t, 'resources', async (h) => {
    const pod = await runPod(h, 'limits');
    const id = await runContainer(pod, 'limited', ['sleep', '3600'], (c) => {
      c.linux.resources = {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 * 1024 * 1024,
        oom_score_adj: 500,
      };
    });
    const pid = (await status(id)).info.pid;
    const knobs = cgroupKnobs(pid);
    const cpuDir = hostCgroupDir(pid, 'cpu');
    const shares = (): string =>
      fs
        .readFileSync(
          path.join(cpuDir, fs.existsSync(path.join(cpuDir, 'cpu.shares')) ? 'cpu.shares' : 'cpu.weight'),
          'utf8',
        )
        .trim();
    const read = (): object => ({
      memory: knobs.memoryLimit(),
      cpu: knobs.cpuQuota(),
      shares: shares(),
      oomScoreAdj: fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(),
    });
    const before = read();
    await node.cri.call('UpdateContainerResources', {
      container_id: id,
      linux: { cpu_period: 100_000, cpu_quota: 30_000, cpu_shares: 256, memory_limit_in_bytes: 96 * 1024 * 1024 },
    });
    const after = read();
    const reported = (await status(id)).status.resources?.linux;
    await removePod(pod);
    return { before, after, reported };
  });
  t.match(
    seen,
    {
      before: {
        memory: String(64 << 20),
        cpu: { quota: '50000', period: '100000' },
        shares: cpuShares(512),
        oomScoreAdj: '500',
      },
      after: {
        memory: String(96 << 20),
        cpu: { quota: '30000', period: '100000' },
        shares: cpuShares(256),
        oomScoreAdj: '500',
      },
      reported: { memory_limit_in_bytes: 96 << 20, cpu_quota: 30000, cpu_shares: 256 },
    },
    'the limits in the cgroup files, before and after the update',
  );
});

t.test(
  'securityContext: runAsUser, readOnlyRootFilesystem, capabilities, seccomp RuntimeDefault, privileged',
  async (t) => {
    const seen = await onBoth(t, 'securityContext', async (h) => {
      const pod = await runPod(h, 'secure');
      // A privileged container needs a privileged sandbox (containerd refuses it otherwise).
      const privilegedPod = await runPod(h, 'privileged', (c) => {
        c.linux.security_context.privileged = true;
      });
      const restricted = await runContainer(pod, 'restricted', ['sleep', '3600'], (c) => {
        c.linux.security_context = {
          ...c.linux.security_context,
          run_as_user: { value: 1000 },
          run_as_group: { value: 2000 },
          supplemental_groups: [3000],
          readonly_rootfs: true,
          no_new_privs: true,
          capabilities: { drop_capabilities: ['ALL'], add_capabilities: ['NET_BIND_SERVICE', 'CHOWN'] },
          seccomp: { profile_type: 'RuntimeDefault' },
        };
      });
      const privileged = await runContainer(privilegedPod, 'privileged', ['sleep', '3600'], (c) => {
        c.linux.security_context = { privileged: true, namespace_options: c.linux.security_context.namespace_options };
      });
      const plain = await runContainer(pod, 'plain', ['sleep', '3600']);
      const view = async (id: string): Promise<object> => {
        const s = await initStatus(id);
        const spec = (await status(id)).info.runtimeSpec;
        return {
          specMasked: spec.linux.maskedPaths?.length ?? 0,
          specSys: spec.mounts.find((m: any) => m.destination === '/sys')?.options,
          ids: (await execSync(id, ['id'])).stdout.trim(),
          writeRoot: (await execSync(id, ['touch', '/written'])).code === 0,
          writeTmp: (await execSync(id, ['touch', '/tmp/written'])).code === 0,
          caps: { eff: s.CapEff, prm: s.CapPrm, bnd: s.CapBnd, amb: s.CapAmb },
          seccomp: s.Seccomp,
          noNewPrivs: s.NoNewPrivs,
          // Refused by containerd's default seccomp profile without CAP_SYS_ADMIN (and by the missing capability).
          unshare: (await execSync(id, ['unshare', '--user', 'true'])).code === 0,
          sys: / on \/sys type sysfs \((\w+)/.exec((await execSync(id, ['mount'])).stdout)?.[1],
          // The default masked and read-only paths, as mount points in the container's mount table.
          masked: (await execSync(id, ['cat', '/proc/1/mountinfo'])).stdout
            .split('\n')
            .map((l) => l.split(' ')[4])
            .filter((mp) => ['/proc/keys', '/proc/timer_list', '/proc/sys', '/sys/firmware'].includes(mp))
            .sort(),
          devices: (await execSync(id, ['ls', '/dev'])).stdout.split('\n').filter(Boolean).length > 20,
        };
      };
      const result = {
        restricted: await view(restricted),
        privileged: await view(privileged),
        plain: await view(plain),
      };
      await removePod(pod);
      await removePod(privilegedPod);
      return result;
    });
    t.match(
      seen,
      {
        restricted: {
          ids: /^uid=1000\b.* gid=2000 groups=.*\b3000\b/,
          writeRoot: false,
          caps: { eff: '0000000000000000', bnd: '0000000000000401' },
          seccomp: '2',
          noNewPrivs: '1',
          unshare: false,
          sys: 'ro',
          masked: ['/proc/keys', '/proc/sys', '/proc/timer_list', '/sys/firmware'],
        },
        // containerd asks for /sys rw; the container still sees it read-only under either runtime: sysfs has one
        // superblock per network namespace, and the sandbox mounted the pod's read-only first.
        privileged: {
          specSys: ['nosuid', 'noexec', 'nodev', 'rw'],
          caps: { eff: hostBounding },
          seccomp: '0',
          unshare: true,
          masked: [],
          devices: true,
        },
        plain: { writeRoot: true, seccomp: '0', devices: false, sys: 'ro' },
      },
      'each security setting holds in the container',
    );
  },
);

t.test(
  'StopPodSandbox and RemovePodSandbox leave nothing: no mounts, cgroups, network namespaces, processes, state',
  async (t) => {
    for (const h of HANDLERS) {
      const pod = await runPod(h, 'gone');
      const volume = path.join(work, `${h}-gone-volume`);
      fs.mkdirSync(volume);
      const ids = [
        await runContainer(pod, 'a', ['sleep', '3600'], (c) => {
          c.mounts = [{ container_path: '/v', host_path: volume }];
        }),
        await runContainer(pod, 'b', ['sh', '-c', 'sleep 3600 & sleep 3600']),
      ];
      const sandbox = await sandboxInfo(pod);
      const pids = [sandbox.info.pid, ...(await Promise.all(ids.map(async (id) => (await status(id)).info.pid)))];
      const netnsPath = sandbox.info.runtimeSpec.linux.namespaces.find((n: any) => n.type === 'network').path;
      t.ok(fs.existsSync(netnsPath), `${h}: the pod's network namespace is mounted at ${netnsPath}`);
      const cgroupDirs = pids.map((p) => hostCgroupDir(p, 'memory'));
      await removePod(pod);
      const all = [pod.id, ...ids];
      const mounts = fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => all.some((id) => l.includes(id)) || l.includes(netnsPath));
      t.same(mounts, [], `${h}: no mounts of the pod's are left`);
      t.notOk(fs.existsSync(netnsPath), `${h}: its network namespace file is gone`);
      t.same(
        pids.filter((p) => fs.existsSync(`/proc/${p}`)),
        [],
        `${h}: no process of the pod's is left`,
      );
      t.same(
        cgroupDirs.filter((d) => fs.existsSync(d)),
        [],
        `${h}: the containers' cgroups are gone`,
      );
      t.same(
        // tsrun keeps its compiled seccomp filters there across containers (docs/architecture.md).
        fs.readdirSync(path.join(node.roots[h], 'k8s.io')).filter((e) => e !== '.cache'),
        [],
        `${h}: the runtime's state dir is empty`,
      );
      t.same(
        processesWith(pod.id).concat(...ids.map((id) => processesWith(id))),
        [],
        `${h}: and no shim of the pod's is left`,
      );
      t.same(
        (await node.cri.call('ListPodSandbox', { filter: { id: pod.id } })).items,
        [],
        `${h}: the CRI has forgotten it`,
      );
      t.equal(
        fs.readFileSync(path.join(volume, '.keep'), { flag: 'a+' }).length,
        0,
        `${h}: the volume's host dir stays`,
      );
    }
  },
);

t.test('the shim ran tsrun with its --root, --log and --log-format json, and the verbs a kubelet needs', async (t) => {
  const lines = fs.readFileSync(node.argvLog, 'utf8').split('\n').filter(Boolean);
  t.ok(
    lines.every((l) => l.startsWith(`--root ${node.roots.tsrun}/k8s.io --log `) && l.includes('--log-format json')),
    'every line',
  );
  // After the shim's four global flags (and --systemd-cgroup with SystemdCgroup), the verb.
  const verbs = new Set(
    lines.map((l) =>
      l
        .split(' ')
        .slice(6)
        .find((w) => !w.startsWith('-')),
    ),
  );
  for (const v of ['create', 'start', 'exec', 'kill', 'delete', 'update'])
    t.ok(verbs.has(v), `the shim used ${v}: ${[...verbs].join(' ')}`);
});
