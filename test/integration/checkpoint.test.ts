/**
 * checkpoint and restore through CRIU (src/lib/criu/), beside runc's.
 *
 * CRIU 3.17 cannot dump on this host's kernel (its own check fails on the
 * vDSO), so the file has two halves, chosen by `criu check`:
 *   - where CRIU cannot work: both verbs refuse with CRIU's reason before
 *     touching anything (the container runs on, no image dir, no state);
 *   - where it can (the v2 VM on Debian's 6.1 kernel, scripts/test.sh): a
 *     counter loop carried on after restore (beside runc's doing the same),
 *     --leave-running and a restore under a new id, pre-dump then a final
 *     dump with --parent-path, a terminal through the console socket, an
 *     open TCP connection in a network namespace joined by path
 *     (--tcp-established), a restore into another --root (migration), a
 *     foreground restore, and the failure paths, each leaving nothing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import t from 'tap';
import { native } from '../../src/lib/native';
import { differsOnPurpose } from '../compat-helpers';
import { busyboxArchive, IMAGE } from '../engine-helpers';
import { image } from '../image-helpers';
import {
  cleanupContainer,
  IS_ROOT,
  leftovers,
  mountsUnder,
  runCommand,
  tempDir,
  tsrun,
  TSRUN,
  tsrunAsync,
  uniqueId,
  waitFor,
} from '../helpers';
import {
  binaryOf,
  COUNTER,
  counterBundle,
  criuWorks,
  detachedWithPipes,
  firstCount,
  lastCount,
  runtime,
  startCounting,
} from '../criu-helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

if (!criuWorks) {
  t.test('where CRIU cannot work, checkpoint and restore refuse with its reason, touching nothing', async (t) => {
    const bundle = counterBundle(t);
    const id = uniqueId('ckpt');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0, 'the container runs');
    const images = path.join(bundle.dir, 'images');
    const r = tsrun(bundle.root, ['checkpoint', '--image-path', images, id]);
    t.equal(r.status, 1, 'checkpoint fails');
    t.match(
      r.stderr,
      /^tsrun: checkpoint \S+: criu cannot checkpoint or restore on this host: its check failed: \S.*\n$/,
    );
    t.equal(r.stderr.split('\n').length, 2, 'one line');
    t.notOk(fs.existsSync(images), 'no image directory was made');
    t.match(JSON.parse(tsrun(bundle.root, ['state', id]).stdout), { status: 'running' }, 'the container runs on');
    t.same(
      fs.readdirSync('/tmp').filter((f) => f.startsWith('tsrun-criu-check-')),
      [],
      "the check's log dir is gone",
    );

    fs.mkdirSync(images);
    fs.writeFileSync(path.join(images, 'descriptors.json'), '["/dev/null","/dev/null","/dev/null"]');
    const restored = tsrun(bundle.root, ['restore', '-d', '-b', bundle.dir, '--image-path', images, `${id}-r`]);
    t.equal(restored.status, 1, 'restore fails');
    t.match(restored.stderr, /^tsrun: restore \S+: criu cannot checkpoint or restore on this host: its check failed: /);
    // The first container runs from the same bundle: its processes are not the restore's.
    t.same(
      leftovers(bundle, `${id}-r`).filter((l) => !l.startsWith('process')),
      [],
      'restore left nothing',
    );
    t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
    t.same(leftovers(bundle, id), []);

    // runc, the same: the container runs on too, but runc went ahead with the dump (its image dir and CRIU's
    // log are left) and says "criu failed: type DUMP errno 0" and the log's name.
    const runcBundle = counterBundle(t);
    const runcRoot = runcBundle.root;
    const rc = (args: string[]): ReturnType<typeof runCommand> => runCommand(['runc', '--root', runcRoot, ...args]);
    t.teardown(() => void rc(['delete', '-f', id]));
    t.equal(runCommand(['runc', '--root', runcRoot, 'run', '-d', '-b', runcBundle.dir, id]).status, 0);
    const runcImages = path.join(runcBundle.dir, 'images');
    const byRunc = rc(['checkpoint', '--image-path', runcImages, id]);
    t.equal(byRunc.status, 1, 'runc fails too');
    t.match(byRunc.stderr, /criu failed: type DUMP errno 0/);
    t.ok(fs.existsSync(path.join(runcImages, 'dump.log')), 'runc ran the dump, leaving its image dir');
    t.match(JSON.parse(rc(['state', id]).stdout), { status: 'running' }, "runc's container runs on");
    differsOnPurpose(t, 'criu-check-first');
  });
}

t.test(
  'checkpoint refuses a container that is not running, and restore one with no checkpoint, leaving nothing',
  async (t) => {
    const bundle = counterBundle(t);
    const id = uniqueId('ckpt');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['create', '-b', bundle.dir, id]).status, 0);
    const r = tsrun(bundle.root, ['checkpoint', '--image-path', path.join(bundle.dir, 'img'), id]);
    t.equal(r.status, 1);
    t.equal(r.stderr, `tsrun: checkpoint ${id}: cannot checkpoint a container in the created state\n`);
    t.notOk(fs.existsSync(path.join(bundle.dir, 'img')), 'no image dir');
    t.equal(tsrun(bundle.root, ['delete', id]).status, 0);

    const missing = path.join(bundle.dir, 'nothing-here');
    const restored = tsrun(bundle.root, ['restore', '-d', '-b', bundle.dir, '--image-path', missing, id]);
    t.equal(restored.status, 1);
    t.match(
      restored.stderr,
      new RegExp(
        `^tsrun: restore ${id}: --image-path ${missing}: no checkpoint there \\(descriptors\\.json: .*\\)\\n$`,
      ),
    );
    t.same(leftovers(bundle, id), [], 'nothing left');

    const badMode = tsrun(bundle.root, ['checkpoint', '--manage-cgroups-mode', 'loose', id]);
    t.equal(
      badMode.stderr,
      `tsrun: checkpoint ${id}: --manage-cgroups-mode: must be soft, full, strict or ignore, not "loose"\n`,
    );
    const badNs = tsrun(bundle.root, ['checkpoint', '--empty-ns', 'pid', id]);
    t.equal(badNs.stderr, `tsrun: checkpoint ${id}: --empty-ns: namespace "pid" is not supported (only network)\n`);
    const fresh = path.join(bundle.dir, 'fresh');
    const badParent = tsrun(bundle.root, ['checkpoint', '--parent-path', '/pre', '--image-path', fresh, id]);
    t.equal(badParent.stderr, `tsrun: checkpoint ${id}: --parent-path: must be relative (to --image-path)\n`);
    t.notOk(fs.existsSync(fresh), 'no image dir made for a bad --parent-path');
  },
);

t.test(
  'checkpoint refuses, before CRIU runs, a container from an image and one without a mount namespace',
  async (t) => {
    const work = tempDir(t, 'tsrun-ck-image-');
    const store = path.join(work, 'store');
    const root = path.join(work, 'state');
    t.equal(image(store, ['import', await busyboxArchive(path.join(work, 'bb.tar'))]).status, 0, 'an image');
    const id = uniqueId('ckimg');
    cleanupContainer(t, root, id);
    t.equal(tsrun(root, ['run', '-d', '--image', IMAGE, '--store', store, id, '--', 'sleep', '300']).status, 0);
    const images = path.join(work, 'images');
    const r = tsrun(root, ['checkpoint', '--image-path', images, id]);
    t.equal(r.status, 1);
    t.match(r.stderr, `tsrun: checkpoint ${id}: cannot checkpoint container "${id}": it runs from an image (--image)`);
    t.equal(r.stderr.split('\n').length, 2, 'one line');
    t.notOk(fs.existsSync(images), 'no image dir');
    t.match(JSON.parse(tsrun(root, ['state', id]).stdout), { status: 'running' });
    t.equal(tsrun(root, ['delete', '-f', id]).status, 0);
    // Nor is a bundle made from an image (its rootfs an overlay the container mounts itself) restored.
    const imageBundle = path.join(work, 'bundle');
    t.equal(tsrun(root, ['bundle', '--store', store, IMAGE, imageBundle]).status, 0);
    const restored = tsrun(root, ['restore', '-d', '-b', imageBundle, '--image-path', images, id]);
    t.equal(
      restored.stderr,
      `tsrun: restore ${id}: a bundle made from an image (tsrun bundle) cannot be restored: its rootfs is an overlay only the container mounts (checkpoint refuses such containers)\n`,
    );
    t.notOk(fs.existsSync(path.join(root, id)), 'no state');

    const bundle = counterBundle(t, (c) => {
      c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'mount');
      c.linux!.maskedPaths = [];
      c.linux!.readonlyPaths = [];
      c.mounts = [];
    });
    const hostId = uniqueId('cknomnt');
    cleanupContainer(t, bundle.root, hostId);
    t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, hostId]).status, 0);
    const h = tsrun(bundle.root, ['checkpoint', '--image-path', images, hostId]);
    t.equal(
      h.stderr,
      `tsrun: checkpoint ${hostId}: cannot checkpoint container "${hostId}": it has no mount namespace of its own (linux.namespaces lacks "mount")\n`,
    );
    t.notOk(fs.existsSync(images), 'no image dir');
    t.equal(tsrun(bundle.root, ['delete', '-f', hostId]).status, 0);
    t.same(leftovers(bundle, hostId), []);
  },
);

t.test('delete after a restore killed while CRIU ran detaches its criu-root, and the rootfs stays whole', async (t) => {
  const bundle = counterBundle(t);
  const id = uniqueId('ckleft');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['create', '-b', bundle.dir, id]).status, 0);
  // What a tsrun killed between the bind and CRIU's answer leaves: the rootfs bound at <state>/criu-root.
  const criuRoot = path.join(bundle.root, id, 'criu-root');
  fs.mkdirSync(criuRoot);
  t.equal(spawnSync('mount', ['--rbind', bundle.rootfs, criuRoot]).status, 0);
  t.teardown(() => void spawnSync('umount', ['-l', criuRoot]));
  const before = fs.readdirSync(bundle.rootfs).sort();
  t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
  t.same(fs.readdirSync(bundle.rootfs).sort(), before, 'the rootfs is whole (the removal never walked into it)');
  t.ok(fs.existsSync(path.join(bundle.rootfs, 'bin', 'sh')));
  t.same(leftovers(bundle, id), [], 'no mount, no state dir');
});

t.test(
  "stdio that is the host's /dev/null becomes the container's own, as runc does (CRIU cannot dump the host's)",
  async (t) => {
    const seen: Record<string, unknown> = {};
    for (const name of ['runc', 'tsrun'] as const) {
      const bundle = counterBundle(t);
      const id = uniqueId(`null${name}`);
      const rt = runtime(name, bundle.root);
      t.teardown(() => void rt(['delete', '-f', id]));
      // An engine's detached container: all three /dev/null, as conmon gives stdin.
      const r = spawnSync(binaryOf(name), ['--root', bundle.root, 'run', '-d', '-b', bundle.dir, id], {
        stdio: 'ignore',
      });
      t.equal(r.status, 0, `${name}: run -d`);
      const pid = JSON.parse(rt(['state', id]).stdout).pid as number;
      const devMount = fs
        .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === '/dev')
        ?.split(' ')[0];
      seen[name] = [0, 1, 2].map((fd) => ({
        target: fs.readlinkSync(`/proc/${pid}/fd/${fd}`),
        onContainersDev:
          /^mnt_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] === devMount,
      }));
      t.equal(rt(['delete', '-f', id]).status, 0);
    }
    t.same(seen.tsrun, seen.runc, 'tsrun as runc');
    t.same(
      seen.tsrun,
      [0, 1, 2].map(() => ({ target: '/dev/null', onContainersDev: true })),
    );
  },
);

if (criuWorks) {
  t.test('a counter checkpointed and restored goes on where it stopped, as under runc', async (t) => {
    const seen: Record<string, unknown> = {};
    for (const name of ['runc', 'tsrun'] as const) {
      const bundle = counterBundle(t);
      const id = uniqueId(`ck${name}`);
      const rt = runtime(name, bundle.root);
      t.teardown(() => void rt(['delete', '-f', id]));
      const out1 = path.join(bundle.dir, 'out1');
      await detachedWithPipes(t, [binaryOf(name), '--root', bundle.root, 'run', '-d', '-b', bundle.dir, id], out1);
      t.ok(await waitFor(() => lastCount(out1) >= 5, 30_000), `${name}: the counter counts`);
      const images = path.join(bundle.dir, 'images');
      const ck = rt(['checkpoint', '--image-path', images, id]);
      t.equal(ck.status, 0, `${name} checkpoint: ${ck.stderr}`);
      const atCheckpoint = lastCount(out1);
      const stateAfter = rt(['state', id]);
      await new Promise((r) => setTimeout(r, 500));
      const stoppedCounting = lastCount(out1) === atCheckpoint;

      const out2 = path.join(bundle.dir, 'out2');
      const pidFile = path.join(bundle.dir, 'restored.pid');
      await detachedWithPipes(
        t,
        [
          binaryOf(name),
          '--root',
          bundle.root,
          'restore',
          '-d',
          '-b',
          bundle.dir,
          '--image-path',
          images,
          '--pid-file',
          pidFile,
          id,
        ],
        out2,
      );
      const counted = await waitFor(() => lastCount(out2) >= atCheckpoint + 3, 60_000);
      const state = JSON.parse(rt(['state', id]).stdout || '{}');
      const exec = rt(['exec', id, 'cat', '/tmp/count']);
      seen[name] = {
        checkpointExit: ck.status,
        goneAfterCheckpoint: stateAfter.status !== 0,
        stoppedCounting,
        restoredOutputGoesOn: counted && firstCount(out2) === atCheckpoint + 1,
        status: state.status,
        pidFileIsInit: fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')) === state.pid,
        execSeesTheCount: exec.status === 0 && Number(exec.stdout.trim()) > atCheckpoint,
        descriptors: JSON.parse(fs.readFileSync(path.join(images, 'descriptors.json'), 'utf8')).map((d: string) =>
          d.replace(/\d+/, 'N'),
        ),
      };
      t.equal(rt(['delete', '-f', id]).status, 0, `${name}: delete`);
      if (name === 'tsrun') t.same(leftovers(bundle, id), [], 'tsrun: nothing left after delete');
    }
    t.same(seen.tsrun, seen.runc, 'tsrun as runc');
    t.match(seen.tsrun, {
      checkpointExit: 0,
      goneAfterCheckpoint: true,
      stoppedCounting: true,
      restoredOutputGoesOn: true,
      status: 'running',
      pidFileIsInit: true,
      execSeesTheCount: true,
      descriptors: ['pipe:[N]', 'pipe:[N]', 'pipe:[N]'],
    });
  });

  t.test('--leave-running keeps the container, and its checkpoint restores beside it under a new id', async (t) => {
    const bundle = counterBundle(t);
    const id = uniqueId('ckleave');
    const copy = `${id}-copy`;
    cleanupContainer(t, bundle.root, id);
    cleanupContainer(t, bundle.root, copy);
    const out1 = await startCounting(t, bundle, id);
    const images = path.join(bundle.dir, 'images');
    // The original counts on once CRIU lets it go, so the checkpoint's count lies between these two readings.
    const beforeCheckpoint = lastCount(out1);
    const ck = tsrun(bundle.root, ['checkpoint', '--leave-running', '--image-path', images, id], {
      timeoutMs: 180_000,
    });
    t.equal(ck.status, 0, ck.stderr);
    const atCheckpoint = lastCount(out1);
    t.ok(await waitFor(() => lastCount(out1) > atCheckpoint + 2, 30_000), 'the original counts on');
    t.match(JSON.parse(tsrun(bundle.root, ['state', id]).stdout), { status: 'running' });

    const out2 = path.join(bundle.dir, 'out2');
    await detachedWithPipes(
      t,
      [binaryOf('tsrun'), '--root', bundle.root, 'restore', '-d', '-b', bundle.dir, '--image-path', images, copy],
      out2,
    );
    t.ok(await waitFor(() => lastCount(out2) >= atCheckpoint + 2, 60_000), 'the copy counts from the checkpoint');
    const first = firstCount(out2);
    t.ok(
      first > beforeCheckpoint && first <= atCheckpoint + 1,
      `from where the checkpoint was (${first}, between ${beforeCheckpoint} and ${atCheckpoint + 1})`,
    );
    const list = tsrun(bundle.root, ['list', '-q']).stdout.trim().split('\n').sort();
    t.same(list, [id, copy].sort(), 'both are listed');
    const a = JSON.parse(tsrun(bundle.root, ['state', id]).stdout);
    const b = JSON.parse(tsrun(bundle.root, ['state', copy]).stdout);
    t.not(a.pid, b.pid, 'two inits');
    for (const c of [id, copy]) t.equal(tsrun(bundle.root, ['delete', '-f', c]).status, 0);
    t.same([...leftovers(bundle, id), ...leftovers(bundle, copy)], []);
  });

  t.test('pre-dump, then a final dump on top of it (--parent-path), restores (--auto-dedup)', async (t) => {
    const bundle = counterBundle(t);
    const id = uniqueId('ckpre');
    cleanupContainer(t, bundle.root, id);
    const out1 = await startCounting(t, bundle, id);
    const pre = path.join(bundle.dir, 'pre');
    const final = path.join(bundle.dir, 'final');
    const p = tsrun(bundle.root, ['checkpoint', '--pre-dump', '--image-path', pre, id], { timeoutMs: 180_000 });
    t.equal(p.status, 0, p.stderr);
    t.match(JSON.parse(tsrun(bundle.root, ['state', id]).stdout), { status: 'running' }, 'running after the pre-dump');
    t.ok(
      fs.readdirSync(pre).some((f) => f.startsWith('pages-')),
      'the pre-dump wrote pages',
    );
    t.notOk(fs.existsSync(path.join(pre, 'descriptors.json')), 'and no descriptors (as runc)');
    const bad = tsrun(bundle.root, ['checkpoint', '--parent-path', pre, '--image-path', final, id]);
    t.equal(bad.stderr, `tsrun: checkpoint ${id}: --parent-path: must be relative (to --image-path)\n`);
    const f = tsrun(bundle.root, ['checkpoint', '--parent-path', '../pre', '--image-path', final, id], {
      timeoutMs: 180_000,
    });
    t.equal(f.status, 0, f.stderr);
    t.ok(fs.existsSync(path.join(final, 'parent')), 'the final dump links its parent');
    const pagesBlocks = (dir: string): number =>
      fs
        .readdirSync(dir)
        .filter((f) => /^pages-\d+\.img$/.test(f))
        .reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).blocks, 0);
    const finalBlocks = pagesBlocks(final);
    t.ok(finalBlocks > 0, 'the final dump wrote pages');
    const atCheckpoint = lastCount(out1);
    const out2 = path.join(bundle.dir, 'out2');
    await detachedWithPipes(
      t,
      [
        binaryOf('tsrun'),
        '--root',
        bundle.root,
        'restore',
        '-d',
        '--auto-dedup',
        '-b',
        bundle.dir,
        '--image-path',
        final,
        id,
      ],
      out2,
    );
    t.ok(await waitFor(() => lastCount(out2) >= atCheckpoint + 2, 60_000), 'restored from the two dumps');
    // --auto-dedup: CRIU punched out of the images each page it restored.
    t.ok(
      pagesBlocks(final) < finalBlocks,
      `the final dump's pages were punched out (${finalBlocks} -> ${pagesBlocks(final)} blocks)`,
    );
    t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
    t.same(leftovers(bundle, id), []);
  });

  t.test('a terminal: the restored pty master goes to the console socket', async (t) => {
    const bundle = counterBundle(t, (c) => {
      c.process!.terminal = true;
      c.process!.args = ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done'];
    });
    const id = uniqueId('cktty');
    cleanupContainer(t, bundle.root, id);
    const receive = (name: string): { socketPath: string; take: () => number } => {
      const socketPath = path.join(bundle.dir, name);
      const listener = native.listenUnix(socketPath);
      t.teardown(() => native.close(listener));
      return {
        socketPath,
        take: () => {
          const conn = native.acceptUnix(listener, 60_000);
          try {
            return native.recvFd(conn, 60_000);
          } finally {
            native.close(conn);
          }
        },
      };
    };
    /** What the pty has for `ms`; its end (EIO: the slave's last holder is gone) ends the reading. */
    const readSome = (master: number, ms: number): string => {
      let text = '';
      const end = Date.now() + ms;
      const buf = Buffer.alloc(4096);
      while (Date.now() < end) {
        if (!native.waitReadable(master, 100)) continue;
        let n: number;
        try {
          n = fs.readSync(master, buf, 0, buf.length, null);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EIO') break;
          throw err;
        }
        if (n <= 0) break;
        text += buf.toString('utf8', 0, n);
      }
      return text;
    };
    const first = receive('console1.sock');
    const run = tsrun(bundle.root, ['run', '-d', '--console-socket', first.socketPath, '-b', bundle.dir, id]);
    t.equal(run.status, 0, run.stderr);
    const master1 = first.take();
    const before = readSome(master1, 1500);
    t.match(before, /tick\d+/, 'the container writes on its pty');
    const images = path.join(bundle.dir, 'images');
    const ck = tsrun(bundle.root, ['checkpoint', '--image-path', images, id], { timeoutMs: 180_000 });
    t.equal(ck.status, 0, ck.stderr);
    const last = Number(
      [
        ...readSome(master1, 300)
          .concat(before)
          .matchAll(/tick(\d+)/g),
      ].pop()?.[1] ?? 0,
    );
    fs.closeSync(master1);

    const second = receive('console2.sock');
    const r = tsrun(
      bundle.root,
      ['restore', '-d', '--console-socket', second.socketPath, '-b', bundle.dir, '--image-path', images, id],
      {
        timeoutMs: 180_000,
      },
    );
    t.equal(r.status, 0, r.stderr);
    const master2 = second.take();
    t.ok(fs.readlinkSync(`/proc/self/fd/${master2}`).includes('ptmx'), 'a pty master came');
    const after = readSome(master2, 3000);
    const ticks = [...after.matchAll(/tick(\d+)/g)].map((m) => Number(m[1]));
    t.ok(ticks.length > 2 && ticks[0] >= last, `the count goes on on the new pty (${ticks[0]} after ${last})`);
    fs.closeSync(master2);
    t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
    t.same(leftovers(bundle, id), []);
  });

  t.test('an open TCP connection in a network namespace joined by path survives (--tcp-established)', async (t) => {
    const netns = `tsrun-ck-${process.pid}`;
    t.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0, 'a network namespace of the test');
    t.teardown(() => void spawnSync('ip', ['netns', 'delete', netns]));
    spawnSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const bundle = counterBundle(t, (c) => {
      c.linux!.namespaces = c.linux!.namespaces!.map((n) =>
        n.type === 'network' ? { type: 'network', path: `/run/netns/${netns}` } : n,
      );
      c.process!.args = [
        '/bin/sh',
        '-c',
        // busybox's nc ends a connection at its stdin's end: the server's never ends.
        'sleep 1000000 | nc -l -p 7000 > /tmp/received & until netstat -ltn | grep -q :7000; do sleep 0.1; done; ' +
          'i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done | nc 127.0.0.1 7000',
      ];
    });
    const id = uniqueId('cktcp');
    cleanupContainer(t, bundle.root, id);
    const received = path.join(bundle.rootfs, 'tmp', 'received');
    const out1 = path.join(bundle.dir, 'out1');
    await detachedWithPipes(t, [binaryOf('tsrun'), '--root', bundle.root, 'run', '-d', '-b', bundle.dir, id], out1);
    t.ok(await waitFor(() => lastCount(received) >= 3, 30_000), 'the client sends over the connection');
    const images = path.join(bundle.dir, 'images');
    const plain = tsrun(
      bundle.root,
      ['checkpoint', '--leave-running', '--image-path', path.join(bundle.dir, 'no'), id],
      {
        timeoutMs: 180_000,
      },
    );
    t.not(plain.status, 0, 'without --tcp-established CRIU refuses the connection');
    t.match(plain.stderr, /criu dump failed: .*\(log: .*dump\.log\)\n$/);
    t.match(JSON.parse(tsrun(bundle.root, ['state', id]).stdout), { status: 'running' }, 'and the container runs on');
    const ck = tsrun(bundle.root, ['checkpoint', '--tcp-established', '--image-path', images, id], {
      timeoutMs: 180_000,
    });
    t.equal(ck.status, 0, ck.stderr);
    const atCheckpoint = lastCount(received);
    const out2 = path.join(bundle.dir, 'out2');
    await detachedWithPipes(
      t,
      [
        binaryOf('tsrun'),
        '--root',
        bundle.root,
        'restore',
        '-d',
        '--tcp-established',
        '-b',
        bundle.dir,
        '--image-path',
        images,
        id,
      ],
      out2,
    );
    t.ok(await waitFor(() => lastCount(received) >= atCheckpoint + 3, 60_000), 'the same connection carries on');
    const lines = fs.readFileSync(received, 'utf8').trim().split('\n').map(Number);
    t.same(
      lines,
      lines.map((_, i) => i + 1),
      'nothing lost or repeated on the connection',
    );
    t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
    t.same(leftovers(bundle, id), []);
  });

  t.test(
    'migration: checkpoint, delete, restore under another --root; restore over an existing id refused',
    async (t) => {
      // With what a restore must give again: a host directory bound in, limits, and the hooks that run at create.
      const data = tempDir(t, 'tsrun-ck-data-');
      const inner = tempDir(t, 'tsrun-ck-inner-');
      fs.writeFileSync(path.join(inner, 'marker'), 'inner\n');
      const hookLog = path.join(data, '..', `${path.basename(data)}.hooks`);
      t.teardown(() => fs.rmSync(hookLog, { force: true }));
      // Each hook logs its state; while `refuse` exists, the hooks fail (a restore whose prestart hook fails).
      const refuse = `${hookLog}.refuse`;
      t.teardown(() => fs.rmSync(refuse, { force: true }));
      const hook = { path: '/bin/sh', args: ['sh', '-c', `(cat; echo) >> ${hookLog}; [ ! -e ${refuse} ]`] };
      const hookStates = (): Array<{ pid: number; status: string }> =>
        fs
          .readFileSync(hookLog, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { pid: number; status: string });
      const bundle = counterBundle(t, (c) => {
        c.process!.args = ['/bin/sh', '-c', COUNTER.replace('> /tmp/count', '> /tmp/count; echo $i > /data/count')];
        c.mounts!.push({ destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] });
        // A bind inside that bind: its mount point is in data, made there at create (runc#2748).
        c.mounts!.push({ destination: '/data/inner', type: 'bind', source: inner, options: ['rbind', 'ro'] });
        c.linux!.resources = { pids: { limit: 77 } };
        c.hooks = { prestart: [hook], createRuntime: [hook], poststop: [hook] };
      });
      const id = uniqueId('ckmig');
      const other = path.join(tempDir(t), 'elsewhere');
      cleanupContainer(t, bundle.root, id);
      cleanupContainer(t, other, id);
      const out1 = await startCounting(t, bundle, id);
      const images = path.join(bundle.dir, 'images');
      const work = path.join(bundle.dir, 'work');
      // A --work-path that cannot be made: refused, and the image dir made for it goes too.
      const unmade = path.join(bundle.dir, 'new', 'images');
      const badWork = tsrun(
        bundle.root,
        ['checkpoint', '--image-path', unmade, '--work-path', path.join(bundle.dir, 'config.json', 'work'), id],
        { timeoutMs: 180_000 },
      );
      t.equal(badWork.status, 1);
      t.match(badWork.stderr, new RegExp(`^tsrun: checkpoint ${id}: --work-path \\S+/config\\.json/work: .*\\n$`));
      t.notOk(fs.existsSync(path.join(bundle.dir, 'new')), 'no image dir left by a bad --work-path');
      t.match(JSON.parse(tsrun(bundle.root, ['state', id]).stdout), { status: 'running' }, 'the container runs on');
      const ck = tsrun(bundle.root, ['checkpoint', '--image-path', images, '--work-path', work, id], {
        timeoutMs: 180_000,
      });
      t.equal(ck.status, 0, ck.stderr);
      t.ok(fs.existsSync(path.join(work, 'dump.log')), "CRIU's log in --work-path");
      t.same(leftovers(bundle, id), [], 'the checkpointed container is gone, with its cgroups');
      // Elsewhere the rootfs may lack the mount points create made: restore makes them, as runc's does.
      fs.rmdirSync(path.join(bundle.rootfs, 'data'));
      fs.rmdirSync(path.join(data, 'inner'));
      const atCheckpoint = lastCount(out1);
      t.same(
        hookStates().map((h) => h.status),
        ['creating', 'creating', 'stopped'],
        "create's prestart and createRuntime, and the checkpoint's delete's poststop",
      );

      // A prestart hook that fails: CRIU is told so, undoes the restore, and poststop ends it, as with create.
      fs.writeFileSync(refuse, '');
      const refused = tsrun(other, ['restore', '-d', '-b', bundle.dir, '--image-path', images, id], {
        timeoutMs: 180_000,
      });
      fs.rmSync(refuse);
      t.equal(refused.status, 1, 'the restore fails');
      t.match(refused.stderr, /prestart/, `it names the hook: ${refused.stderr}`);
      t.same(
        hookStates()
          .slice(3)
          .map((h) => h.status),
        ['creating', 'stopped'],
        'the failed prestart hook, then poststop',
      );
      t.same(leftovers({ ...bundle, root: other }, id), [], 'the failed restore left nothing');
      const out2 = path.join(bundle.dir, 'out2');
      await detachedWithPipes(
        t,
        [binaryOf('tsrun'), '--root', other, 'restore', '-d', '-b', bundle.dir, '--image-path', images, id],
        out2,
      );
      t.ok(await waitFor(() => lastCount(out2) >= atCheckpoint + 2, 60_000), 'it counts on under the other root');
      const state = JSON.parse(tsrun(other, ['state', id]).stdout);
      t.match(state, { status: 'running', id });
      t.ok(
        await waitFor(() => lastCount(path.join(data, 'count')) > atCheckpoint, 10_000),
        'the bind mount is there again',
      );
      const innerSeen = tsrun(other, ['exec', id, 'cat', '/data/inner/marker']);
      t.equal(innerSeen.stdout, 'inner\n', 'and the bind inside it, its mount point made in the outer source');
      const cgroup = fs.readFileSync(`/proc/${state.pid}/cgroup`, 'utf8').match(/^0::(.*)$/m)?.[1];
      t.equal(fs.readFileSync(`/sys/fs/cgroup${cgroup}/pids.max`, 'utf8').trim(), '77', "the config's limits hold");
      const hooks = hookStates();
      t.equal(hooks.length, 7, 'and prestart and createRuntime again at the restore');
      t.same(
        hooks.slice(5).map((h) => [h.status, h.pid]),
        [
          ['creating', state.pid],
          ['creating', state.pid],
        ],
        "the restore's hooks saw the restored init",
      );
      t.not(tsrun(bundle.root, ['state', id]).status, 0, 'and is not in the first');

      const again = tsrun(other, ['restore', '-d', '-b', bundle.dir, '--image-path', images, id]);
      t.equal(again.status, 1);
      t.match(again.stderr, new RegExp(`^tsrun: restore ${id}: .*exists.*\\n$`));
      t.match(JSON.parse(tsrun(other, ['state', id]).stdout), { status: 'running' }, 'the one there untouched');
      t.same(mountsUnder(other), [], 'no criu-root left mounted');
      t.equal(tsrun(other, ['delete', '-f', id]).status, 0);
      t.same(leftovers({ ...bundle, root: other }, id), []);
    },
  );

  t.test('a foreground restore passes the output on and ends with the container, deleting it', async (t) => {
    const bundle = counterBundle(t);
    const id = uniqueId('ckfg');
    cleanupContainer(t, bundle.root, id);
    const out1 = await startCounting(t, bundle, id);
    const images = path.join(bundle.dir, 'images');
    t.equal(tsrun(bundle.root, ['checkpoint', '--image-path', images, id], { timeoutMs: 180_000 }).status, 0);
    const atCheckpoint = lastCount(out1);
    const restoring = tsrunAsync(bundle.root, ['restore', '-b', bundle.dir, '--image-path', images, id], {
      timeoutMs: 180_000,
    });
    t.ok(
      await waitFor(() => tsrun(bundle.root, ['state', id]).stdout.includes('"running"'), 120_000),
      'restored and running',
    );
    await new Promise((r) => setTimeout(r, 1000));
    t.equal(tsrun(bundle.root, ['kill', id, 'KILL']).status, 0);
    const r = await restoring;
    t.equal(r.status, 137, `the container's status is restore's (${r.stderr})`);
    const lines = r.stdout.trim().split('\n').map(Number);
    t.equal(lines[0], atCheckpoint + 1, "restore's stdout carries the restored output");
    t.not(tsrun(bundle.root, ['state', id]).status, 0, 'deleted after');
    t.same(leftovers(bundle, id), []);
  });

  t.test('lazy migration: --lazy-pages with a page server, restored while the pages still travel', async (t) => {
    const bundle = counterBundle(t);
    const id = uniqueId('cklazy');
    const copy = `${id}-copy`;
    cleanupContainer(t, bundle.root, id);
    cleanupContainer(t, bundle.root, copy);
    const out1 = await startCounting(t, bundle, id);
    const images = path.join(bundle.dir, 'images');
    const port = String(20000 + (process.pid % 20000));
    // CRIU writes one byte to --status-fd once its page server waits for the restorer (runc's test does the same).
    const fifo = path.join(bundle.dir, 'lazy.fifo');
    native.mkfifo(fifo, 0o600);
    const status = fs.openSync(fifo, 'r+');
    t.teardown(() => fs.closeSync(status));
    const err = path.join(bundle.dir, 'checkpoint.err');
    const errFd = fs.openSync(err, 'w');
    const checkpointing = spawn(
      TSRUN,
      [
        '--root',
        bundle.root,
        'checkpoint',
        '--lazy-pages',
        '--page-server',
        `127.0.0.1:${port}`,
        '--status-fd',
        '3',
        '--image-path',
        images,
        id,
      ],
      { stdio: ['ignore', 'ignore', errFd, status] },
    );
    fs.closeSync(errFd);
    const dumped = new Promise<number | null>((resolve) => checkpointing.on('exit', (code) => resolve(code)));
    t.teardown(() => void checkpointing.kill('SIGKILL'));
    t.ok(native.waitReadable(status, 120_000), 'the page server is ready');
    const byte = Buffer.alloc(1);
    t.equal(fs.readSync(status, byte, 0, 1, null), 1);
    t.equal(byte[0], 0, 'a \\0 on --status-fd');
    const lazy = spawn(
      'criu',
      ['lazy-pages', '--page-server', '--address', '127.0.0.1', '--port', port, '-D', images],
      {
        stdio: 'ignore',
      },
    );
    t.teardown(() => void lazy.kill('SIGKILL'));
    const served = new Promise<number | null>((resolve) => lazy.on('exit', (code) => resolve(code)));
    const atCheckpoint = lastCount(out1);
    const out2 = path.join(bundle.dir, 'out2');
    await detachedWithPipes(
      t,
      [
        binaryOf('tsrun'),
        '--root',
        bundle.root,
        'restore',
        '-d',
        '--lazy-pages',
        '-b',
        bundle.dir,
        '--image-path',
        images,
        copy,
      ],
      out2,
    );
    t.ok(await waitFor(() => lastCount(out2) >= atCheckpoint + 3, 120_000), 'the copy counts on from the checkpoint');
    t.equal(await dumped, 0, `the checkpoint ends once every page went over: ${fs.readFileSync(err, 'utf8')}`);
    t.equal(await served, 0, "CRIU's lazy-pages daemon ends too");
    t.not(tsrun(bundle.root, ['state', id]).status, 0, 'the original is gone');
    t.match(JSON.parse(tsrun(bundle.root, ['state', copy]).stdout), { status: 'running' });
    t.equal(tsrun(bundle.root, ['delete', '-f', copy]).status, 0);
    t.same([...leftovers(bundle, id), ...leftovers(bundle, copy)], []);
  });
}
