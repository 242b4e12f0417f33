/**
 * The systemd cgroup manager (--systemd-cgroup, src/lib/cgroup/systemd.ts).
 * Where systemd is not the init (this host), it is refused by name, and
 * nothing is left.  Where it is (scripts/test.sh runs this file in the
 * test/vm --systemd VM), each container is a transient scope: its limits
 * are unit properties and files, update, pause/resume, ps, kill --all,
 * events, exec and delete work, and nothing is left: no unit, no cgroup.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import t from 'tap';
import { differsOnPurpose } from '../compat-helpers';
import { IS_ROOT, leftovers, makeBundle, tsrun, uniqueId, waitFor } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const SYSTEMD = fs.existsSync('/run/systemd/system');

const systemctl = (...args: string[]): string =>
  spawnSync('systemctl', args, { encoding: 'utf8' }).stdout?.trim() ?? '';
const unitGone = (unit: string): boolean => /^LoadState=not-found$/m.test(systemctl('show', unit, '-p', 'LoadState'));

if (!SYSTEMD) {
  t.test('where systemd is not the init, --systemd-cgroup is refused by name, and nothing is left', async (t) => {
    // This host is hybrid, too: where systemd is its init, the v1 refusal is the one it meets.
    differsOnPurpose(t, 'systemd-v2-only');
    const bundle = makeBundle(t, (c) => (c.linux!.cgroupsPath = 'system.slice:tsrun-test:x'), ['/bin/true']);
    const id = uniqueId('sd');
    const r = tsrun(bundle.root, ['--systemd-cgroup', 'run', '-b', bundle.dir, id]);
    t.equal(r.status, 1);
    t.equal(
      r.stderr,
      `tsrun: run ${id}: --systemd-cgroup: systemd is not the init of this host (no /run/systemd/system)\n`,
    );
    t.same(leftovers(bundle, id), []);
  });
  t.test('a systemd cgroupsPath without --systemd-cgroup says what it needs', async (t) => {
    const bundle = makeBundle(t, (c) => (c.linux!.cgroupsPath = 'system.slice:tsrun-test:x'), ['/bin/true']);
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, uniqueId('sd')]);
    t.equal(r.status, 1);
    t.match(
      r.stderr,
      /linux\.cgroupsPath: "system\.slice:tsrun-test:x" is a systemd path \(slice:prefix:name\): it needs --systemd-cgroup/,
    );
  });
} else {
  const SCOPE_OF = (id: string): string => `tsrun-test-${id}.scope`;
  const DIR_OF = (id: string): string => `/sys/fs/cgroup/system.slice/${SCOPE_OF(id)}`;

  t.test('run: a transient scope, gone after', async (t) => {
    const id = uniqueId('sd');
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.cgroupsPath = `system.slice:tsrun-test:${id}`;
        c.linux!.resources = { memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 50 }, cpu: { shares: 512 } };
      },
      ['/bin/cat', '/proc/self/cgroup'],
    );
    // No cgroup namespace in the base config: the container sees the host's path.
    const r = tsrun(bundle.root, ['--systemd-cgroup', 'run', '-b', bundle.dir, id]);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, `0::/system.slice/${SCOPE_OF(id)}\n`, 'in its scope');
    t.ok(await waitFor(() => unitGone(SCOPE_OF(id)), 10_000), 'the unit is gone with its last process');
    t.notOk(fs.existsSync(DIR_OF(id)), 'and its cgroup');
    t.same(leftovers(bundle, id), []);
  });

  t.test(
    'create, then the unit and its files; update, pause, resume, ps, kill --all, events, exec, delete',
    async (t) => {
      const id = uniqueId('sd');
      const bundle = makeBundle(
        t,
        (c) => {
          c.linux!.cgroupsPath = `system.slice:tsrun-test:${id}`;
          c.linux!.resources = { memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 50 } };
        },
        ['/bin/sh', '-c', 'sleep 1000 & exec sleep 1000'],
      );
      const run = (...args: string[]) => tsrun(bundle.root, ['--systemd-cgroup', ...args]);
      t.teardown(() => run('delete', '--force', id));
      t.equal(run('run', '-d', '-b', bundle.dir, id).status, 0);
      const scope = SCOPE_OF(id);
      t.equal(systemctl('show', scope, '-p', 'ActiveState', '--value'), 'active', 'the scope is active');
      t.equal(
        systemctl('show', scope, '-p', 'MemoryMax', '--value'),
        String(64 * 1024 * 1024),
        'MemoryMax is the limit',
      );
      t.equal(systemctl('show', scope, '-p', 'TasksMax', '--value'), '50');
      t.equal(systemctl('show', scope, '-p', 'Delegate', '--value'), 'yes');
      t.equal(fs.readFileSync(`${DIR_OF(id)}/memory.max`, 'utf8').trim(), String(64 * 1024 * 1024), 'and memory.max');

      t.equal(run('update', '--memory', '128m', '--pids-limit', '60', id).status, 0);
      t.equal(
        systemctl('show', scope, '-p', 'MemoryMax', '--value'),
        String(128 * 1024 * 1024),
        'update: the property',
      );
      t.equal(fs.readFileSync(`${DIR_OF(id)}/memory.max`, 'utf8').trim(), String(128 * 1024 * 1024), 'and the file');
      t.equal(fs.readFileSync(`${DIR_OF(id)}/pids.max`, 'utf8').trim(), '60');

      t.equal(run('pause', id).status, 0);
      t.equal(JSON.parse(run('state', id).stdout).status, 'paused');
      t.equal(run('resume', id).status, 0);
      t.equal(JSON.parse(run('state', id).stdout).status, 'running');

      const pids = JSON.parse(run('ps', '--format', 'json', id).stdout) as number[];
      t.equal(pids.length, 2, 'ps: the two processes');
      const exec = run('exec', id, '/bin/cat', '/proc/self/cgroup');
      t.equal(exec.stdout, `0::/system.slice/${scope}\n`, 'exec joins the scope');

      const events = run('events', '--stats', id);
      t.equal(events.status, 0);
      t.match(JSON.parse(events.stdout), { type: 'stats', id, data: { pids: { current: 2 } } });

      t.equal(run('kill', '--all', id, 'KILL').status, 0);
      t.ok(
        await waitFor(() => JSON.parse(run('state', id).stdout).status === 'stopped', 10_000),
        'kill --all stops it',
      );
      t.equal(run('delete', id).status, 0);
      t.ok(await waitFor(() => unitGone(scope), 10_000), 'delete: no unit');
      t.notOk(fs.existsSync(DIR_OF(id)), 'no cgroup');
      t.same(leftovers(bundle, id), []);
    },
  );

  t.test('delete --force of a running container stops its unit', async (t) => {
    const id = uniqueId('sd');
    const bundle = makeBundle(t, (c) => (c.linux!.cgroupsPath = `system.slice:tsrun-test:${id}`), [
      '/bin/sleep',
      '1000',
    ]);
    t.equal(tsrun(bundle.root, ['--systemd-cgroup', 'run', '-d', '-b', bundle.dir, id]).status, 0);
    const del = tsrun(bundle.root, ['--debug', 'delete', '--force', id]);
    t.equal(del.status, 0, `the manager is read back from state.json: ${del.stderr}`);
    t.ok(await waitFor(() => unitGone(SCOPE_OF(id)), 10_000), 'no unit');
    t.notOk(fs.existsSync(DIR_OF(id)), 'no cgroup');
    t.same(leftovers(bundle, id), []);
  });

  t.test('no cgroupsPath: tsrun-<id>.scope in system.slice', async (t) => {
    differsOnPurpose(t, 'systemd-default-unit');
    const id = uniqueId('sd');
    const bundle = makeBundle(t, () => {}, ['/bin/cat', '/proc/self/cgroup']);
    const r = tsrun(bundle.root, ['--systemd-cgroup', 'run', '-b', bundle.dir, id]);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, `0::/system.slice/tsrun-${id}.scope\n`);
    t.ok(await waitFor(() => unitGone(`tsrun-${id}.scope`), 10_000));
  });

  t.test('a memory limit the container exceeds: the OOM killer, as without systemd', async (t) => {
    const id = uniqueId('sd');
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.cgroupsPath = `system.slice:tsrun-test:${id}`;
        c.linux!.resources = { memory: { limit: 16 * 1024 * 1024, swap: 16 * 1024 * 1024 } };
      },
      ['/bin/sh', '-c', 'x=a; while :; do x="$x$x"; done'],
    );
    const r = tsrun(bundle.root, ['--debug', '--systemd-cgroup', 'run', '-b', bundle.dir, id], { timeoutMs: 60_000 });
    t.equal(r.status, 137, `SIGKILLed by the OOM killer: ${r.stderr}`);
    t.ok(await waitFor(() => unitGone(SCOPE_OF(id)), 10_000));
    t.same(leftovers(bundle, id), []);
  });
}
