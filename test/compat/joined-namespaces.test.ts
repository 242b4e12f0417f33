/**
 * Issue 15: every namespace type joined by path, and a path of the wrong
 * type refused, compared with runc; and a config.json changed after
 * create, which start must not read (the runtime-tools suite checks
 * both).
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { type Config, type NamespaceType } from '../../src/lib/config';
import { IS_ROOT, makeBundle, uniqueId, waitFor } from '../helpers';
import { cleanupBoth, referenceInstalled, RUNTIMES, seen, under, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const FILES: Record<string, string> = {
  ipc: 'ipc',
  uts: 'uts',
  network: 'net',
  pid: 'pid',
  cgroup: 'cgroup',
  mount: 'mnt',
};

/** A process of ours in new ipc, uts, net, pid, cgroup and mount namespaces, killed at teardown. */
async function holder(t: Parameters<typeof makeBundle>[0] & { teardown(fn: () => void): void }): Promise<number> {
  const child = spawn(
    'unshare',
    ['--ipc', '--uts', '--net', '--pid', '--fork', '--cgroup', '--mount', '--propagation', 'private', 'sleep', '1000'],
    { stdio: 'ignore' },
  );
  t.teardown(() => {
    spawnSync('pkill', ['-KILL', '-P', String(child.pid)]);
    child.kill('SIGKILL');
  });
  // The sleep, in the new namespaces (unshare --fork runs it as a child).
  let pid = 0;
  await waitFor(() => {
    const kids = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim();
    pid = Number(kids.split(' ')[0] || 0);
    return pid > 0;
  }, 5000);
  return pid;
}

const inode = (p: string): number => fs.statSync(p).ino;

t.test('each namespace type joined by path: the container is in it, as under runc', async (t) => {
  const pid = await holder(t);
  for (const type of ['ipc', 'uts', 'network', 'pid', 'cgroup'] as NamespaceType[]) {
    const nsPath = `/proc/${pid}/ns/${FILES[type]}`;
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.namespaces = [
          ...c.linux!.namespaces!.filter((n) => n.type !== type),
          { type, path: type === 'pid' ? `/proc/${pid}/ns/pid` : nsPath },
        ];
        if (type !== 'uts') delete c.hostname;
      },
      ['/bin/sh', '-c', `readlink /proc/self/ns/${FILES[type]}`],
    );
    const id = uniqueId(`join${type}`);
    cleanupBoth(t, bundle, id);
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.same(seen(r.tsrun), seen(r.reference), `${type}: as under the reference: ${r.tsrun.stderr}`);
    t.match(r.tsrun.stdout, new RegExp(`\\[${inode(nsPath)}\\]`), `${type}: the namespace at ${nsPath}`);
  }
});

t.test('a path of another namespace type: refused by both, nothing left', async (t) => {
  const pid = await holder(t);
  for (const [type, file] of [
    ['ipc', 'net'],
    ['network', 'uts'],
    ['uts', 'ipc'],
    ['mount', 'net'],
  ] as Array<[NamespaceType, string]>) {
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.namespaces = [
          ...c.linux!.namespaces!.filter((n) => n.type !== type),
          { type, path: `/proc/${pid}/ns/${file}` },
        ];
      },
      ['/bin/true'],
    );
    const id = uniqueId('wrongns');
    cleanupBoth(t, bundle, id);
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.not(r.reference.status, 0, `${type} given a ${file} namespace: the reference refuses it`);
    t.not(r.tsrun.status, 0, `${type} given a ${file} namespace: tsrun refuses it: ${r.tsrun.stderr.trim()}`);
  }
});

t.test('config.json changed after create: start runs what create read, as under runc', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/true']);
  const id = uniqueId('cfgafter');
  cleanupBoth(t, bundle, id);
  const config = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'config.json'), 'utf8')) as Config;
  const writing = (text: string): string =>
    JSON.stringify({ ...config, process: { ...config.process, args: ['/bin/sh', '-c', `echo ${text} > /out`] } });
  const outputs: Record<string, string> = {};
  for (const rt of RUNTIMES) {
    fs.rmSync(path.join(bundle.rootfs, 'out'), { force: true });
    fs.writeFileSync(path.join(bundle.dir, 'config.json'), writing('created-with-this'));
    t.equal(under(rt, bundle, id, ['create', '-b', bundle.dir, '%ID%']).status, 0, `${rt.name}: create`);
    fs.writeFileSync(path.join(bundle.dir, 'config.json'), writing('changed-after'));
    t.equal(under(rt, bundle, id, ['start', '%ID%']).status, 0, `${rt.name}: start`);
    await waitFor(
      () =>
        fs.existsSync(path.join(bundle.rootfs, 'out')) &&
        fs.readFileSync(path.join(bundle.rootfs, 'out'), 'utf8').length > 0,
      10_000,
    );
    outputs[rt.name] = fs.readFileSync(path.join(bundle.rootfs, 'out'), 'utf8');
    under(rt, bundle, id, ['delete', '--force', '%ID%']);
  }
  t.equal(outputs.tsrun, outputs.reference, 'as under the reference');
  t.equal(outputs.tsrun, 'created-with-this\n', "the program create read, not the file's new one");
});
