/**
 * checkpoint's and restore's flags that only change what CRIU is told,
 * each on a container that needs it, under runc and then tsrun in the same
 * run, with the same facts:
 *   --file-locks           a flock(2) held by the init
 *   --link-remap           an open file whose name was removed (another link left)
 *   --tcp-skip-in-flight   a listening socket with a connection not yet accepted
 *   --ext-unix-sk          a datagram socket connected to the host's
 *   --shell-job            a terminal of the caller's session, held by the init
 *   --manage-cgroups-mode full, strict and ignore, with --empty-ns network
 *   restore --no-subreaper, --no-pivot (a foreground restore)
 * Without the flag the checkpoint (or, for --shell-job, the restore) is
 * refused first, for CRIU's own reason, the container running on.  runc
 * 1.1.5 lacks --link-remap, --tcp-skip-in-flight and the ignore mode, and
 * names no cgroup to CRIU on cgroup v2 (differsOnPurpose).
 *
 * CRIU dumps only in the v2 VM (Debian's 6.1 kernel, scripts/test.sh); on
 * this host the file says so and skips.  --lsm-profile and
 * --lsm-mount-context need AppArmor or SELinux, which neither has: the
 * bytes CRIU gets for them are checked in test/unit/criu.test.ts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawn } from 'child_process';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { differsOnPurpose } from '../compat-helpers';
import {
  type Bundle,
  cleanupContainer,
  FIXTURE_ROOTFS,
  IS_ROOT,
  leftovers,
  mountsUnder,
  runCommand,
  shellQuote,
  uniqueId,
  waitFor,
  writeConfig,
} from '../helpers';
import { binaryOf, counterBundle, COUNTER, criuWorks, detachedWithPipes, lastCount, runtime } from '../criu-helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}
if (!criuWorks) {
  t.plan(0, "CRIU cannot dump on this kernel (criu check fails): the flags are tested in the v2 VM's run");
  process.exit(0);
}

type Runtime = 'runc' | 'tsrun';
type Rt = ReturnType<typeof runtime>;
type Tap = Parameters<Extract<Parameters<typeof t.test>[0], (...a: any[]) => any>>[0];

/** A command line run in its own process group with its output in `out`, not waited for; ended at teardown. */
function inBackground(t: Tap, command: string, out: string): void {
  const child = spawn('/bin/sh', ['-c', `${command} > '${out}' 2>&1`], { detached: true, stdio: 'ignore' });
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
}

function state(rt: Rt, id: string): { status?: string; pid?: number } {
  const r = rt(['state', id]);
  return r.status === 0 ? JSON.parse(r.stdout) : {};
}

/** CRIU's first error in a log, numbers made N: the reason a dump was refused, to compare between runtimes. */
function firstError(log: string): string | undefined {
  if (!fs.existsSync(log)) return undefined;
  const line = fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .find((l) => /Error \(/.test(l));
  return line?.replace(/^.*?Error \([^)]*\): /, '').replace(/[0-9a-f]*\d[0-9a-f]*/g, 'N');
}

const CHECKER = path.join(FIXTURE_ROOTFS, 'bin', 'checker');
const received = (bundle: Bundle): string => path.join(bundle.dir, 'received');

/** The accept-queue lengths of the sockets listening on `port` in a process's network namespace. */
function listening(pid: number, port: number): number[] {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs
    .readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(hex) && f[3] === '0A')
    .map((f) => parseInt(f[4].split(':')[1], 16));
}

interface FlagCase {
  mutate?: (c: Config) => void;
  /** Done before the container starts, with its bundle (what the container connects to). */
  setup?: (t: Tap, bundle: Bundle) => Promise<void> | void;
  /** How the runtime is started (run, and restore): default run -d with pipes for stdio, as an engine does. */
  start?: (t: Tap, argv: string[], out: string) => Promise<void> | void;
  ready: (bundle: Bundle, out: string) => boolean;
  /** Done once the container is ready: what it is to be checkpointed with. */
  prepare?: (t: Tap, pid: number) => Promise<void>;
  /** The checkpoint flags without the one the container needs: refused. */
  refusedWith?: string[];
  checkpoint: string[];
  restore: string[];
  /** The restore flags without the one the restore needs: refused, leaving nothing (run to its end by `startSync`). */
  refusedRestoreWith?: string[];
  startSync?: (argv: string[]) => { status: number | null };
  /** Facts that are not compared with runc's (CRIU's order of failing steps, which varies from run to run). */
  uncompared?: string[];
  /** What is seen of the restored container, to compare with runc's. */
  probe: (rt: Rt, id: string, bundle: Bundle, pid: number) => Promise<unknown> | unknown;
}

/** One runtime through the case: run, the refused checkpoint, the checkpoint, restore, probe, delete. */
async function exercise(t: Tap, name: Runtime, c: FlagCase): Promise<Record<string, unknown>> {
  const bundle = counterBundle(t, c.mutate);
  const id = uniqueId(`ckf${name}`);
  const rt = runtime(name, bundle.root);
  cleanupContainer(t, bundle.root, id);
  t.teardown(() => void rt(['delete', '-f', id]));
  const start = c.start ?? ((t: Tap, argv: string[], out: string) => detachedWithPipes(t, argv, out).then(() => {}));
  await c.setup?.(t, bundle);
  const out1 = path.join(bundle.dir, 'out1');
  await start(t, [binaryOf(name), '--root', bundle.root, 'run', '-d', '-b', bundle.dir, id], out1);
  const facts: Record<string, unknown> = {};
  facts.ready = await waitFor(() => c.ready(bundle, out1) && state(rt, id).status === 'running', 60_000);
  if (!facts.ready) return facts;
  await c.prepare?.(t, state(rt, id).pid!);
  if (c.refusedWith) {
    const refusedDir = path.join(bundle.dir, 'refused');
    const r = rt(['checkpoint', ...c.refusedWith, '--image-path', refusedDir, id]);
    facts.refused = r.status !== 0;
    facts.reason = firstError(path.join(refusedDir, 'dump.log'));
    facts.runsOn = state(rt, id).status;
  }
  const images = path.join(bundle.dir, 'images');
  const ck = rt(['checkpoint', ...c.checkpoint, '--image-path', images, id]);
  facts.checkpointed = ck.status === 0 || ck.stderr;
  facts.goneAfterCheckpoint = state(rt, id).status === undefined;
  if (c.refusedRestoreWith) {
    const r = (c.startSync ?? ((argv: string[]) => runCommand(argv, { timeoutMs: 180_000 })))([
      binaryOf(name),
      '--root',
      bundle.root,
      'restore',
      ...c.refusedRestoreWith,
      '-b',
      bundle.dir,
      '--image-path',
      images,
      id,
    ]);
    facts.restoreRefused = r.status !== 0;
    facts.restoreReason = firstError(path.join(images, 'restore.log'));
    facts.goneAfterRefusal = state(rt, id).status === undefined;
  }
  const out2 = path.join(bundle.dir, 'out2');
  const restoring = start(
    t,
    [
      binaryOf(name),
      '--root',
      bundle.root,
      'restore',
      '-d',
      ...c.restore,
      '-b',
      bundle.dir,
      '--image-path',
      images,
      id,
    ],
    out2,
  );
  // A start that returns once restore has (-d) leaves its outcome settled; a foreground one is waited for here.
  const returned = restoring instanceof Promise;
  await restoring;
  facts.restored = await waitFor(() => state(rt, id).status === 'running', returned ? 5_000 : 60_000);
  if (!facts.restored) {
    facts.restoreOutput = fs.existsSync(out2) ? fs.readFileSync(out2, 'utf8') : '';
    facts.restoreFailure = firstError(path.join(images, 'restore.log'));
  }
  if (facts.restored) facts.probe = await c.probe(rt, id, bundle, state(rt, id).pid!);
  facts.deleted = rt(['delete', '-f', id]).status === 0;
  if (name === 'tsrun') {
    facts.leftovers = leftovers(bundle, id);
    facts.mounts = mountsUnder(bundle.root);
  }
  return facts;
}

/**
 * Where tsrun differs from runc 1.1.5 on purpose (docs/differences-from-runc.md): `show` names the key, `fields` are
 * the facts left out of the comparison, and `runc` is what runc 1.1.5 does instead.
 */
interface Differs {
  show: (t: Tap) => void;
  fields: string[];
  runc: Record<string, unknown>;
}

/** The case under runc, then under tsrun: the same facts (tsrun's leftovers none), and `expected` of them. */
function besideRunc(title: string, c: FlagCase, expected: Record<string, unknown>, differs?: Differs): void {
  t.test(title, async (t) => {
    const runc = await exercise(t, 'runc', c);
    const tsrun = await exercise(t, 'tsrun', c);
    // What each saw, for whoever reads a failure.
    t.comment(`runc: ${JSON.stringify(runc)}`);
    t.comment(`tsrun: ${JSON.stringify(tsrun)}`);
    t.same(tsrun.leftovers, [], 'tsrun leaves nothing');
    t.same(tsrun.mounts, [], 'and no mount');
    delete tsrun.leftovers;
    delete tsrun.mounts;
    t.match(tsrun, expected);
    if (differs) {
      differs.show(t);
      t.match(runc, differs.runc, 'what runc 1.1.5 does instead');
      for (const field of differs.fields) {
        delete runc[field];
        delete tsrun[field];
      }
    }
    // Each runtime words a failure its own way: CRIU's own reason (restoreFailure) is what is compared.
    for (const field of ['restoreOutput', ...(c.uncompared ?? [])]) {
      delete runc[field];
      delete tsrun[field];
    }
    t.same(tsrun, runc, differs ? 'the rest as runc' : 'tsrun as runc');
  });
}

const execOut = (rt: Rt, id: string, args: string[]): string => {
  const r = rt(['exec', id, ...args]);
  return `${r.status}:${r.stdout.trim()}`;
};

besideRunc(
  '--file-locks: a held flock(2) is refused without it, and held again by the restored init with it',
  {
    mutate: (c) => (c.process!.args = ['/bin/checker', 'flock', '/tmp/lock', 'hold']),
    ready: (_b, out) => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('"locked":true'),
    refusedWith: [],
    checkpoint: ['--file-locks'],
    restore: ['--file-locks'],
    probe: (rt, id) => execOut(rt, id, ['/bin/checker', 'flock', '/tmp/lock']),
  },
  {
    refused: true,
    reason: /lock/i,
    runsOn: 'running',
    checkpointed: true,
    restored: true,
    probe: '1:{"locked":false,"errno":11}',
  },
);

besideRunc(
  '--link-remap: an open file whose name was removed (another link left) is linked back for the dump',
  {
    mutate: (c) =>
      (c.process!.args = [
        '/bin/sh',
        '-c',
        `echo kept > /tmp/a; ln /tmp/a /tmp/b; exec 3</tmp/a; rm /tmp/a; ${COUNTER}`,
      ]),
    ready: (_b, out) => lastCount(out) >= 2,
    refusedWith: [],
    checkpoint: ['--link-remap'],
    restore: [],
    probe: (rt, id) => ({
      content: execOut(rt, id, ['cat', '/proc/1/fd/3']),
      tmp: execOut(rt, id, ['ls', '/tmp']),
    }),
  },
  {
    refused: true,
    reason: /link remap/,
    runsOn: 'running',
    checkpointed: true,
    restored: true,
    probe: { content: '0:kept', tmp: '0:b\ncount' },
  },
  // runc 1.3 added the flag; 1.1.5 refuses it.
  {
    show: (t) => differsOnPurpose(t, 'criu-newer-flags'),
    fields: ['checkpointed', 'goneAfterCheckpoint', 'restored', 'restoreFailure', 'probe'],
    runc: { checkpointed: /flag provided but not defined: -link-remap/ },
  },
);

besideRunc(
  '--tcp-skip-in-flight: a connection not yet accepted is refused without it, and left behind with it',
  {
    mutate: (c) => (c.process!.args = ['/bin/checker', 'listen', '7777']),
    ready: (_b, out) => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('"listening":7777'),
    // A client in the container's network namespace, outside the container: its connection waits in the queue.
    prepare: async (t, pid) => {
      const busybox = path.join(FIXTURE_ROOTFS, 'bin', 'busybox');
      inBackground(t, `sleep 100000 | nsenter --net=/proc/${pid}/ns/net ${busybox} nc 127.0.0.1 7777`, '/dev/null');
      await waitFor(() => (listening(pid, 7777)[0] ?? 0) >= 1, 20_000);
    },
    refusedWith: [],
    checkpoint: ['--tcp-skip-in-flight'],
    restore: [],
    probe: (_rt, _id, _b, pid) => listening(pid, 7777),
  },
  { refused: true, reason: /In-flight connection/, runsOn: 'running', checkpointed: true, restored: true, probe: [0] },
  {
    show: (t) => differsOnPurpose(t, 'criu-newer-flags'),
    fields: ['checkpointed', 'goneAfterCheckpoint', 'restored', 'restoreFailure', 'probe'],
    runc: { checkpointed: /flag provided but not defined: -tcp-skip-in-flight/ },
  },
);

besideRunc(
  '--ext-unix-sk: a datagram socket connected to a socket outside is refused without it, and reconnected with it',
  {
    // The receiver is the host's, in a directory bound at the same path in the container: CRIU connects the restored
    // socket by the name the container knew, from the host's side.
    setup: async (t, bundle) => {
      const dir = path.join(bundle.dir, 'socks');
      fs.mkdirSync(dir);
      inBackground(t, `exec ${CHECKER} dgram-serve ${dir}/sock`, received(bundle));
      await waitFor(() => fs.existsSync(`${dir}/sock`), 10_000);
      const config = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'config.json'), 'utf8')) as Config;
      config.mounts!.push({ destination: dir, type: 'bind', source: dir, options: ['rbind', 'rw'] });
      config.process!.args = ['/bin/checker', 'dgram-send', `${dir}/sock`];
      // In the caller's network namespace: CRIU finds a unix socket's peer only in the namespace it dumps.
      config.linux!.namespaces = config.linux!.namespaces!.filter((n) => n.type !== 'network');
      writeConfig(bundle.dir, config);
    },
    ready: (bundle) => lastCount(received(bundle)) >= 3,
    refusedWith: [],
    checkpoint: ['--ext-unix-sk'],
    restore: ['--ext-unix-sk'],
    probe: async (_rt, _id, bundle) => {
      const at = lastCount(received(bundle));
      return waitFor(() => lastCount(received(bundle)) >= at + 3, 20_000);
    },
  },
  { refused: true, reason: /[Ee]xternal/, runsOn: 'running', checkpointed: true, restored: true, probe: true },
);

besideRunc(
  "--shell-job: a terminal of the caller's session: its restore is refused without it, and CRIU goes on with it",
  {
    // A terminal of the caller's (script's pty), which the container opens on its fd 3 through a bind of the host's
    // devpts: CRIU finds its mount, but its session is not the container's.
    setup: async (t, bundle) => {
      const ttyFile = path.join(bundle.dir, 'tty');
      inBackground(
        t,
        `sleep 100000 | script -qfec ${shellQuote([`tty > ${ttyFile}; exec sleep 100000`])} /dev/null`,
        '/dev/null',
      );
      await waitFor(() => fs.existsSync(ttyFile) && fs.readFileSync(ttyFile, 'utf8').includes('\n'), 20_000);
      const tty = fs.readFileSync(ttyFile, 'utf8').trim();
      const config = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'config.json'), 'utf8')) as Config;
      config.mounts!.push({ destination: '/hostpts', type: 'bind', source: '/dev/pts', options: ['rbind', 'rw'] });
      config.process!.args = ['/bin/sh', '-c', `exec 3<>/hostpts/${path.basename(tty)}; ${COUNTER}`];
      writeConfig(bundle.dir, config);
    },
    ready: (bundle) => lastCount(path.join(bundle.rootfs, 'tmp', 'count')) >= 2,
    checkpoint: ['--shell-job'],
    // Its stdio /dev/null: a shell job's restore takes CRIU's fd 0, which a pipe's inherit_fd would take too.
    start: (_t, argv, out) => {
      // restore's own messages kept (with -d, CRIU's fds 1 and 2 are restore's, not the container's).
      const fd = fs.openSync(out, 'w');
      const stdio: Array<'ignore' | number> = argv.includes('restore')
        ? ['ignore', fd, fd]
        : ['ignore', 'ignore', 'ignore'];
      return new Promise((resolve) =>
        spawn(argv[0], argv.slice(1), { stdio }).on('exit', () => {
          fs.closeSync(fd);
          resolve();
        }),
      );
    },
    refusedRestoreWith: ['-d'],
    restore: ['--shell-job'],
    // With the flag CRIU passes the session check and stops at a later step (it has no terminal of its own to give
    // the session, and no console socket for the pty it makes), under runc as under tsrun; which of the two it logs
    // first varies.  runc has no test of --shell-job either.
    uncompared: ['restoreFailure'],
    probe: () => null,
  },
  {
    checkpointed: true,
    restoreRefused: true,
    restoreReason: 'tty: No task found with sid N',
    goneAfterRefusal: true,
    restored: false,
    restoreFailure: /^(?!tty: No task found with sid)/,
  },
);

function cgroupsMode(mode: string): FlagCase {
  return {
    mutate: (c) => (c.linux!.resources = { pids: { limit: 77 } }),
    ready: (_b, out) => lastCount(out) >= 2,
    checkpoint: ['--manage-cgroups-mode', mode, '--empty-ns', 'network'],
    restore: ['--manage-cgroups-mode', mode],
    probe: (_rt, id, bundle, pid) => {
      const cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').match(/^0::(.*)$/m)?.[1] ?? '';
      return {
        cgroup: cgroup.replace(id, 'ID'),
        pidsMax: fs.readFileSync(`/sys/fs/cgroup${cgroup}/pids.max`, 'utf8').trim(),
        countsOn: lastCount(path.join(bundle.dir, 'out2')) > 0,
        images: fs
          .readdirSync(path.join(bundle.dir, 'images'))
          .filter((f) => f.endsWith('.img'))
          .map((f) => f.replace(/\d+/g, 'N'))
          .sort(),
      };
    },
  };
}

besideRunc(
  "--manage-cgroups-mode full (and --empty-ns network): restored into the container's cgroup, its limits holding",
  cgroupsMode('full'),
  { checkpointed: true, restored: true, probe: { cgroup: '/ID', pidsMax: '77', countsOn: true } },
);

besideRunc(
  '--manage-cgroups-mode ignore: CRIU leaves the cgroups alone, the container is restored into its own',
  cgroupsMode('ignore'),
  { checkpointed: true, restored: true, probe: { cgroup: '/ID', pidsMax: '77', countsOn: true } },
  // runc 1.2 added the mode; 1.1.5 refuses it.
  {
    show: (t) => differsOnPurpose(t, 'criu-newer-flags'),
    fields: ['checkpointed', 'goneAfterCheckpoint', 'restored', 'restoreFailure', 'probe'],
    runc: { checkpointed: /Invalid manage cgroups mode/ },
  },
);

besideRunc(
  "--manage-cgroups-mode strict: the restore is refused by CRIU, as the container's cgroup is made first",
  cgroupsMode('strict'),
  {
    checkpointed: true,
    restored: false,
    restoreOutput: /criu restore failed: Error \(criu\/cgroup\.c:\d+\): cg: Abort restore of existing cgroups/,
  },
  // runc 1.1.5 names no cgroup to CRIU on cgroup v2, so CRIU makes the one it dumped; runc 1.2 names it, as tsrun.
  {
    show: (t) => differsOnPurpose(t, 'criu-cgroup-root-v2'),
    fields: ['restored', 'restoreFailure', 'probe', 'deleted'],
    runc: { restored: true, probe: { cgroup: '/ID', pidsMax: '77' } },
  },
);

besideRunc(
  'restore --no-subreaper --no-pivot in the foreground: restored, its output through restore, ended by delete',
  {
    ready: (_b, out) => lastCount(out) >= 2,
    checkpoint: [],
    restore: ['--no-subreaper', '--no-pivot'],
    start: (t, argv, out) =>
      argv.includes('restore')
        ? inBackground(t, `sleep 100000 | ${shellQuote(argv.filter((a) => a !== '-d'))}`, out)
        : detachedWithPipes(t, argv, out).then(() => {}),
    probe: async (_rt, _id, bundle) => waitFor(() => lastCount(path.join(bundle.dir, 'out2')) > 0, 20_000),
  },
  { checkpointed: true, restored: true, probe: true, deleted: true },
);
