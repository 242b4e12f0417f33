/**
 * Faults from the host, made for real: a full tmpfs under --root, a bundle
 * tsrun may not read, a rootfs on a read-only mount, a pids limit reached
 * in the parent cgroup, an image container's mount namespace held by a
 * host process, and a reboot-like wipe of the state.  Each ends in a clear one-line error (or
 * is retried where the fault can pass) and leaves nothing behind.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { BuiltPlugins, Test } from '@tapjs/test';
import t from 'tap';
import {
  alive,
  type Bundle,
  cleanupContainer,
  defaultCgroupDirs,
  IS_ROOT,
  leftovers,
  makeBundle,
  mountsUnder,
  runCommand,
  type RunResult,
  tempDir,
  TSRUN,
  tsrun,
  tsrunAsync,
  uniqueId,
  waitFor,
} from '../helpers';
import { baseLayer, dockerArchive, image, imageOf } from '../image-helpers';
import { readHierarchies } from '../../src/lib/cgroup/manager';

if (!IS_ROOT) {
  t.plan(0, 'fault tests need root');
  process.exit(0);
}

type T = Test & BuiltPlugins;

/** Non-zero exit and exactly one line, "tsrun: VERB ID: ...", matching `pattern`. */
function failsWith(t: T, r: RunResult, pattern: RegExp): void {
  t.not(r.status, 0, `exit status ${r.status}`);
  const lines = r.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `one line: ${JSON.stringify(r.stderr)}`);
  t.match(lines[0] ?? '', pattern);
}

async function nothingLeft(
  t: T,
  bundle: Bundle,
  id: string,
  opts: { root?: string; besides?: string[] } = {},
): Promise<void> {
  t.ok(
    await waitFor(() => leftovers(bundle, id).length === 0, 10_000),
    `nothing left: ${leftovers(bundle, id).join(', ') || 'none'}`,
  );
  const root = opts.root ?? bundle.root;
  const ids = fs.existsSync(root)
    ? fs.readdirSync(root).filter((n) => !n.startsWith('.') && !opts.besides?.includes(n))
    : [];
  t.same(ids, [], 'no state dir');
}

function sh(command: string): void {
  const r = spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command}: ${r.stderr}`);
}

/** A mount of our own for the test, taken down at teardown. */
function mountForTest(t: T, command: string, target: string): void {
  sh(command);
  t.teardown(() => {
    spawnSync('umount', ['-l', target]);
  });
}

t.test('a full tmpfs under --root', async (t) => {
  const bundle = makeBundle(t, () => {}, ['sleep', '300']);
  const root = path.join(tempDir(t, 'tsrun-full-'), 'root');
  fs.mkdirSync(root);
  mountForTest(t, `mount -t tmpfs -o size=256k tsrun-test-full ${root}`, root);
  const id = uniqueId('full');
  cleanupContainer(t, root, id);
  const fill = (): void => {
    spawnSync('dd', ['if=/dev/zero', `of=${root}/fill`, 'bs=4k'], { stdio: 'ignore' });
  };

  t.test('create fails naming the file it could not write, and leaves nothing', async (t) => {
    fill();
    const r = tsrun(root, ['create', '-b', bundle.dir, id]);
    failsWith(t, r, new RegExp(`^tsrun: create ${id}: write ${root}/${id}/state.json: no space left on device$`));
    t.notOk(fs.existsSync(path.join(root, id)), 'no state dir');
    await nothingLeft(t, { ...bundle, root }, id, { root, besides: ['fill'] });
    fs.rmSync(path.join(root, 'fill'));
  });

  t.test('a container made before the disk filled up still starts, stops and is deleted', async (t) => {
    t.equal(tsrun(root, ['create', '-b', bundle.dir, id]).status, 0);
    fill();
    t.equal(tsrun(root, ['start', id]).status, 0, 'start');
    t.equal(JSON.parse(tsrun(root, ['state', id]).stdout).status, 'running');
    t.equal(tsrun(root, ['exec', id, 'true']).status, 0, 'exec');
    const d = tsrun(root, ['delete', '--force', id]);
    t.equal(d.status, 0, `delete --force: ${d.stderr}`);
    await nothingLeft(t, { ...bundle, root }, id, { root, besides: ['fill'] });
    fs.rmSync(path.join(root, 'fill'));
    t.equal(tsrun(root, ['run', '-d', '-b', bundle.dir, id]).status, 0, 'with room again, the same id runs');
    t.equal(tsrun(root, ['delete', '--force', id]).status, 0);
  });
});

/** tsrun as root without the capabilities that let root read any file, as when the bundle is another user's. */
function tsrunWithoutDacOverride(root: string, args: string[]): RunResult {
  return runCommand([
    'setpriv',
    '--bounding-set',
    '-dac_override,-dac_read_search',
    '--inh-caps',
    '-dac_override,-dac_read_search',
    TSRUN,
    '--root',
    root,
    ...args,
  ]);
}

t.test('a bundle tsrun may not read', async (t) => {
  for (const [what, target, mode] of [
    ['config.json', 'config.json', 0o600],
    ['the bundle directory', '.', 0o700],
  ] as const) {
    t.test(what, async (t) => {
      const bundle = makeBundle(t, () => {}, ['true']);
      const id = uniqueId('unreadable');
      cleanupContainer(t, bundle.root, id);
      // Another user's, not to be read by others; tsrun runs as root without CAP_DAC_*.
      fs.chownSync(path.join(bundle.dir, target), 1000, 1000);
      fs.chmodSync(path.join(bundle.dir, target), mode);
      for (const verb of ['create', 'run']) {
        const r = tsrunWithoutDacOverride(bundle.root, [verb, '-b', bundle.dir, id]);
        failsWith(t, r, new RegExp(`^tsrun: ${verb} ${id}: ${bundle.dir}/config.json: permission denied$`));
        await nothingLeft(t, bundle, id);
      }
    });
  }

  t.test('config.json that is a directory', async (t) => {
    const bundle = makeBundle(t, () => {}, ['true']);
    const id = uniqueId('unreadable');
    fs.rmSync(path.join(bundle.dir, 'config.json'));
    fs.mkdirSync(path.join(bundle.dir, 'config.json'));
    failsWith(
      t,
      tsrun(bundle.root, ['create', '-b', bundle.dir, id]),
      new RegExp(`config.json: illegal operation on a directory$`),
    );
    await nothingLeft(t, bundle, id);
  });
});

t.test('a rootfs on a read-only mount', async (t) => {
  const bundle = makeBundle(t, () => {}, ['sh', '-c', 'echo ran; touch /written']);
  mountForTest(
    t,
    `mount --bind ${bundle.rootfs} ${bundle.rootfs} && mount -o remount,bind,ro ${bundle.rootfs}`,
    bundle.rootfs,
  );
  const ownMounts = mountsUnder(bundle.dir).length;

  t.test('a container that needs nothing made in it runs, and its root is read-only', async (t) => {
    const id = uniqueId('ro');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.equal(r.stdout, 'ran\n');
    t.match(r.stderr, /Read-only file system/, 'writing to / fails');
    t.equal(r.status, 1);
    t.equal(mountsUnder(bundle.dir).length, ownMounts, 'no mount left');
    t.same(
      leftovers(bundle, id).filter((l) => !l.startsWith('mount')),
      [],
    );
  });

  t.test('a mount point that would have to be made there is a clear error', async (t) => {
    const id = uniqueId('ro');
    cleanupContainer(t, bundle.root, id);
    const config = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'config.json'), 'utf8'));
    config.mounts.push({ destination: '/not-there', type: 'tmpfs', source: 'tmpfs' });
    const other = path.join(bundle.dir, 'b2');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'config.json'), JSON.stringify({ ...config, root: { path: bundle.rootfs } }));
    for (const verb of ['create', 'run']) {
      const r = tsrun(bundle.root, [verb, '-b', other, id]);
      failsWith(
        t,
        r,
        new RegExp(`^tsrun: ${verb} ${id}: mounts\\[${config.mounts.length - 1}\\]: .*read-only file system$`),
      );
      t.equal(mountsUnder(bundle.dir).length, ownMounts, 'no mount left');
      t.same(
        leftovers(bundle, id).filter((l) => !l.startsWith('mount')),
        [],
        'nothing else left',
      );
    }
  });
});

/** A cgroup of ours in every hierarchy, removed (with whatever is below it) at teardown. */
function parentCgroup(t: T, name: string): Array<{ dir: string; controllers: string[] }> {
  const dirs = readHierarchies().map((h) => ({ dir: path.join(h.mountPoint, name), controllers: h.controllers }));
  for (const d of dirs) fs.mkdirSync(d.dir, { recursive: true });
  t.teardown(() => {
    for (const d of dirs) {
      for (const sub of fs.existsSync(d.dir) ? fs.readdirSync(d.dir, { withFileTypes: true }) : []) {
        if (sub.isDirectory()) fs.rmdirSync(path.join(d.dir, sub.name));
      }
      if (fs.existsSync(d.dir)) fs.rmdirSync(d.dir);
    }
  });
  return dirs;
}

t.test('pids exhausted in the parent cgroup', async (t) => {
  const name = `tsrun-pids-${process.pid}`;
  const dirs = parentCgroup(t, name);
  const pids = dirs.find((d) => d.controllers.includes('pids'));
  if (!t.ok(pids, 'the host has a pids controller') || !pids) return;
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.cgroupsPath = `/${name}/c`;
    },
    ['sleep', '300'],
  );

  // One process of ours sits in the parent: with pids.max 2, the helper that
  // joins the container's cgroup takes the second, and no init can be cloned.
  const squatter = spawn('sleep', ['300'], { stdio: 'ignore' });
  t.teardown(() => {
    squatter.kill('SIGKILL');
  });
  fs.writeFileSync(path.join(pids.dir, 'cgroup.procs'), String(squatter.pid));
  fs.writeFileSync(path.join(pids.dir, 'pids.max'), '2');

  t.test('the helper retries for a while, then says which limit stood in the way', async (t) => {
    const id = uniqueId('pids');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['create', '-b', bundle.dir, id]);
    failsWith(
      t,
      r,
      new RegExp(
        `^tsrun: create ${id}: start container init.*: resource temporarily unavailable \\(pids\\.max 2 in ${pids.dir}, 2 in use\\)$`,
      ),
    );
    t.ok(
      await waitFor(() => dirs.every((d) => !fs.existsSync(path.join(d.dir, 'c'))), 5_000),
      "the container's cgroups are gone",
    );
    await nothingLeft(t, bundle, id);
  });

  t.test('room made while it retries: the create succeeds', async (t) => {
    const id = uniqueId('pids');
    cleanupContainer(t, bundle.root, id);
    const log = path.join(bundle.dir, `${id}.log`);
    const creating = tsrunAsync(bundle.root, ['--log', log, '--debug', 'create', '-b', bundle.dir, id]);
    const retrying = (): boolean =>
      fs.existsSync(log) && /resource temporarily unavailable.*trying again/.test(fs.readFileSync(log, 'utf8'));
    t.ok(await waitFor(retrying, 10_000, 2), 'the first clone was refused, and tsrun waits to try again');
    squatter.kill('SIGKILL');
    const r = await creating;
    t.equal(r.status, 0, `create: ${r.stderr}`);
    t.equal(JSON.parse(tsrun(bundle.root, ['state', id]).stdout).status, 'created');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
    await nothingLeft(t, bundle, id);
  });
});

/** A store holding one busybox image whose command is `cmd`, and bundles made from it (all in one temp dir). */
async function imageWith(t: T, cmd: string[]): Promise<{ store: string; bundleOf(name: string): Bundle }> {
  const work = tempDir(t, 'tsrun-faults-');
  const store = path.join(work, 'store');
  fs.writeFileSync(path.join(work, 'i.tar'), await dockerArchive(imageOf([baseLayer()], { Cmd: cmd }), 'faults:1'));
  t.equal(image(store, ['import', path.join(work, 'i.tar')]).status, 0, 'image imported');
  const bundleOf = (name: string): Bundle => {
    const b: Bundle = {
      dir: path.join(work, name),
      rootfs: path.join(work, name, 'rootfs'),
      config: {} as Bundle['config'],
      root: path.join(work, 'state'),
    };
    t.equal(tsrun(b.root, ['bundle', '--store', store, 'faults:1', b.dir]).status, 0, 'bundle made');
    return b;
  };
  return { store, bundleOf };
}

t.test("an image container's mount namespace held by a host process after delete", async (t) => {
  // The overlay lives in the container's mount namespace only (nothing of
  // it on the host to keep busy), so it lasts as long as anything holds
  // that namespace: here a host process that entered it, outside the
  // container's cgroups and pid namespace, so delete does not kill it.
  // While it lives it could write the upper: delete leaves the upper, says
  // so, and cleans up the rest; image gc takes the upper once it is gone.
  const { store, bundleOf } = await imageWith(t, ['sleep', '300']);
  const b = bundleOf('held');
  const id = uniqueId('held');
  cleanupContainer(t, b.root, id);
  t.equal(tsrun(b.root, ['run', '-d', '-b', b.dir, id]).status, 0, 'running');
  const pid = JSON.parse(tsrun(b.root, ['state', id]).stdout).pid as number;
  const holder = spawn('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', '/bin/sleep', '300'], { stdio: 'ignore' });
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  t.ok(
    await waitFor(
      () =>
        alive(holder.pid!) && fs.readlinkSync(`/proc/${holder.pid}/ns/mnt`) === fs.readlinkSync(`/proc/${pid}/ns/mnt`),
      5_000,
    ),
    "the holder is in the container's mount namespace",
  );
  const d = tsrun(b.root, ['delete', '--force', id]);
  t.equal(d.status, 0, `delete --force: ${d.stderr}`);
  t.match(
    d.stderr,
    new RegExp(
      `its overlay is still mounted in the mount namespace of process ${holder.pid}; left in place for image gc`,
    ),
    'and says why its upper stays',
  );
  t.equal(fs.readdirSync(path.join(store, 'containers')).length, 1, 'its upper is kept while the namespace is held');
  t.ok(alive(holder.pid!), 'the holder was not touched');
  t.match(image(store, ['gc']).stderr, /still mounted/, 'gc leaves it too while it is held');
  holder.kill('SIGKILL');
  t.ok(await waitFor(() => !alive(holder.pid!), 5_000));
  t.match(
    image(store, ['gc']).stdout,
    new RegExp(`^container rootfs [0-9a-f-]+ \\(${id}\\)\n$`),
    'gc takes it once nothing holds it',
  );
  t.same(fs.readdirSync(path.join(store, 'containers')), []);
  await nothingLeft(t, b, id);
});

t.test(
  'a reboot-like wipe of the state (processes and state dir gone, cgroups left as an unclean host would)',
  async (t) => {
    const bundle = makeBundle(t, () => {}, ['sleep', '300']);
    const id = uniqueId('wipe');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
    const pid = JSON.parse(tsrun(bundle.root, ['state', id]).stdout).pid as number;
    process.kill(pid, 'SIGKILL');
    t.ok(await waitFor(() => !alive(pid), 10_000), 'its processes are gone');
    fs.rmSync(bundle.root, { recursive: true, force: true });
    t.ok(
      defaultCgroupDirs(id).every((dir) => fs.existsSync(dir)),
      'its cgroups are still there, empty',
    );

    t.equal(tsrun(bundle.root, ['list', '-q']).stdout, '', 'list shows nothing');
    t.match(tsrun(bundle.root, ['state', id]).stderr, /does not exist/);
    const again = tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]);
    t.equal(again.status, 0, `the same id runs again, in the cgroups left behind: ${again.stderr}`);
    t.equal(JSON.parse(tsrun(bundle.root, ['state', id]).stdout).status, 'running');
    t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
    await nothingLeft(t, bundle, id);
  },
);

t.test(
  'an image container whose init exits on its own is stopped, and delete takes its overlay and cgroups',
  async (t) => {
    const { store, bundleOf } = await imageWith(t, ['sleep', '0.2']);
    const b = bundleOf('b');
    const id = uniqueId('exits');
    cleanupContainer(t, b.root, id);
    t.equal(tsrun(b.root, ['run', '-d', '-b', b.dir, id]).status, 0);
    t.ok(await waitFor(() => JSON.parse(tsrun(b.root, ['state', id]).stdout).status === 'stopped', 10_000), 'stopped');
    t.same(mountsUnder(b.dir), [], 'its overlay was never on the host (it went with its mount namespace)');
    t.equal(fs.readdirSync(path.join(store, 'containers')).length, 1, 'its upper is there until delete');
    const d = tsrun(b.root, ['delete', id]);
    t.equal(d.status, 0, `delete: ${d.stderr}`);
    t.same(fs.readdirSync(path.join(store, 'containers')), [], 'its upper is gone');
    await nothingLeft(t, b, id);
  },
);
