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
import * as path from 'path';
import t from 'tap';
import { detectLayout, readHierarchies } from '../../src/lib/cgroup/manager';
import { differsOnPurpose, REFERENCE, referenceInstalled, RUNTIMES, under } from '../compat-helpers';
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
  t.test('without --systemd-cgroup an org.systemd.property annotation is ignored, as runc ignores it', async (t) => {
    const bundle = makeBundle(t, (c) => (c.annotations = { 'org.systemd.property.CollectMode': 'not even text' }), [
      '/bin/true',
    ]);
    const r = tsrun(bundle.root, ['--debug', 'run', '-b', bundle.dir, uniqueId('sd')]);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, /org\.systemd\.property\.CollectMode: ignored without --systemd-cgroup, as runc ignores them/);
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
  // scripts/test.sh runs this file twice: in a v2 VM and in a hybrid one (test/vm --hybrid), systemd's two layouts.
  const HIERARCHIES = readHierarchies();
  const V1 = detectLayout(HIERARCHIES) !== 'unified';
  const SCOPE_OF = (id: string): string => `tsrun-test-${id}.scope`;
  /** The unit's directory in every hierarchy: systemd's and, on v1, those tsrun makes. */
  const DIRS_OF = (id: string): string[] =>
    HIERARCHIES.map((h) => path.join(h.mountPoint, 'system.slice', SCOPE_OF(id)));
  const noCgroupLeft = (id: string): string[] => DIRS_OF(id).filter((d) => fs.existsSync(d));
  /** A controller's file in a unit's directory in system.slice. */
  const knobAt = (unit: string, controller: string, file: string): string =>
    fs
      .readFileSync(
        path.join(V1 ? `/sys/fs/cgroup/${controller}` : '/sys/fs/cgroup', 'system.slice', unit, file),
        'utf8',
      )
      .trim();
  const knob = (id: string, controller: string, file: string): string => knobAt(SCOPE_OF(id), controller, file);
  const MEMORY = V1
    ? { property: 'MemoryLimit', file: 'memory.limit_in_bytes' }
    : { property: 'MemoryMax', file: 'memory.max' };
  /** /proc/PID/cgroup of a process in the unit: every hierarchy's line names it. */
  const inUnit = (cgroupFile: string, unit: string): boolean => {
    const lines = cgroupFile.trim().split('\n');
    return lines.length === HIERARCHIES.length && lines.every((l) => l.split(':')[2] === `/system.slice/${unit}`);
  };

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
    t.ok(inUnit(r.stdout, SCOPE_OF(id)), `in its scope, in every hierarchy: ${r.stdout}`);
    t.ok(await waitFor(() => unitGone(SCOPE_OF(id)), 10_000), 'the unit is gone with its last process');
    t.same(noCgroupLeft(id), [], 'and its cgroups');
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
        systemctl('show', scope, '-p', MEMORY.property, '--value'),
        String(64 * 1024 * 1024),
        `${MEMORY.property} is the limit`,
      );
      t.equal(systemctl('show', scope, '-p', 'TasksMax', '--value'), '50');
      t.equal(systemctl('show', scope, '-p', 'Delegate', '--value'), 'yes');
      t.equal(knob(id, 'memory', MEMORY.file), String(64 * 1024 * 1024), `and ${MEMORY.file}`);

      t.equal(run('update', '--memory', '128m', '--pids-limit', '60', id).status, 0);
      t.equal(
        systemctl('show', scope, '-p', MEMORY.property, '--value'),
        String(128 * 1024 * 1024),
        'update: the property',
      );
      t.equal(knob(id, 'memory', MEMORY.file), String(128 * 1024 * 1024), 'and the file');
      t.equal(knob(id, 'pids', 'pids.max'), '60');

      t.equal(run('pause', id).status, 0);
      t.equal(JSON.parse(run('state', id).stdout).status, 'paused');
      t.equal(
        V1 ? knob(id, 'freezer', 'freezer.state') : knob(id, '', 'cgroup.freeze'),
        V1 ? 'FROZEN' : '1',
        'the freezer holds it',
      );
      t.equal(run('resume', id).status, 0);
      t.equal(JSON.parse(run('state', id).stdout).status, 'running');

      const pids = JSON.parse(run('ps', '--format', 'json', id).stdout) as number[];
      t.equal(pids.length, 2, 'ps: the two processes');
      const exec = run('exec', id, '/bin/cat', '/proc/self/cgroup');
      t.ok(inUnit(exec.stdout, scope), `exec joins the scope, in every hierarchy: ${exec.stdout}`);

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
      t.same(noCgroupLeft(id), [], 'no cgroup');
      t.same(leftovers(bundle, id), []);
    },
  );

  t.test(
    'device rules are unit properties: a daemon-reload keeps them, update changes them (frozen meanwhile on v1)',
    async (t) => {
      const id = uniqueId('sd');
      const fuseNode = { path: '/dev/fuse', type: 'c' as const, major: 10, minor: 229, fileMode: 0o666 };
      const bundle = makeBundle(
        t,
        (c) => {
          c.linux!.cgroupsPath = `system.slice:tsrun-test:${id}`;
          c.linux!.devices = [fuseNode];
          c.root!.readonly = false;
        },
        // Counts the opens of /dev/null refused (a failed redirect of ":" would end the shell instead).
        ['/bin/sh', '-c', 'while :; do cat /dev/null 2>/dev/null || echo refused >>/refused; done'],
      );
      const run = (...args: string[]) => tsrun(bundle.root, ['--systemd-cgroup', ...args]);
      t.teardown(() => run('delete', '--force', id));
      t.equal(run('run', '-d', '-b', bundle.dir, id).status, 0);
      const scope = SCOPE_OF(id);
      // The devices cgroup's answer only: past it, a VM without the fuse module says ENODEV.
      const fuse = (): string => {
        const r = run('exec', id, '/bin/sh', '-c', 'exec 3<>/dev/fuse && echo opened');
        if (r.stdout === 'opened\n' || /can't create \/dev\/fuse: No such device/.test(r.stderr)) return 'let through';
        return /can't create \/dev\/fuse: Operation not permitted/.test(r.stderr) ? 'refused' : r.stderr;
      };
      const rules = (): string[] => (V1 ? knob(id, 'devices', 'devices.list').split('\n').sort() : []);
      t.equal(systemctl('show', scope, '-p', 'DevicePolicy', '--value'), 'strict');
      t.match(systemctl('show', scope, '-p', 'DeviceAllow', '--value'), /char-136 rwm/);
      t.equal(fuse(), 'refused', 'fuse is not in the allow-list');
      const before = rules();
      t.notOk(before.includes('a *:* rwm'));
      // With DevicePolicy=auto and no DeviceAllow, systemd writes "a" to a v1 scope's devices.allow here.
      t.equal(spawnSync('systemctl', ['daemon-reload']).status, 0, 'daemon-reload');
      t.same(rules(), before, 'the same rules after it');
      t.equal(fuse(), 'refused', 'fuse still refused');
      // systemd rewrites a v1 scope's rules from "deny all" up at a reload, refusals and all (runc's
      // containers meet them too); tsrun's own updates below are made with the container frozen.
      t.equal(run('exec', id, '/bin/rm', '-f', '/refused').status, 0);

      const allowFuse = JSON.stringify({
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
        ],
      });
      for (let i = 0; i < 10; i++) {
        const u = tsrun(bundle.root, ['--systemd-cgroup', 'update', '-r', '-', id], { input: allowFuse });
        t.equal(u.status, 0, `update: ${u.stderr}`);
      }
      t.match(
        systemctl('show', scope, '-p', 'DeviceAllow', '--value'),
        /\/dev\/char\/10:229 rw/,
        'update: the property',
      );
      const refused = run('exec', id, '/bin/sh', '-c', 'cat /refused 2>/dev/null | wc -l');
      t.equal(refused.stdout.trim(), '0', 'the loop never met a refused /dev/null');
      t.equal(fuse(), 'let through', 'fuse is allowed');
      t.equal(spawnSync('systemctl', ['daemon-reload']).status, 0);
      t.equal(fuse(), 'let through', 'and still after a daemon-reload');
      t.equal(JSON.parse(run('state', id).stdout).status, 'running', 'running, thawed');
      t.equal(run('delete', '--force', id).status, 0);
      t.ok(await waitFor(() => unitGone(scope), 10_000), 'no unit');
      t.same(noCgroupLeft(id), [], 'no cgroup');
    },
  );

  t.test('the same bundle under runc --systemd-cgroup: the same unit, properties, files and clean-up', async (t) => {
    t.ok(referenceInstalled(), `${REFERENCE.bin} is there to compare with`);
    const seenBy: Record<string, unknown> = {};
    for (const rt of RUNTIMES) {
      const id = uniqueId('cmp');
      const prefix = `cmp-${rt.name}`;
      const unit = `${prefix}-${id}.scope`;
      const bundle = makeBundle(
        t,
        (c) => {
          c.linux!.cgroupsPath = `system.slice:${prefix}:${id}`;
          // runc's docs/systemd.md example: extra unit properties, in GVariant text.
          c.annotations = {
            'org.systemd.property.TimeoutStopUSec': 'uint64 123456789',
            'org.systemd.property.CollectMode': "'inactive-or-failed'",
            'org.systemd.property.RuntimeMaxSec': '600',
          };
          c.linux!.resources = {
            memory: { limit: 64 * 1024 * 1024 },
            pids: { limit: 40 },
            cpu: { shares: 512, quota: 50_000, period: 100_000 },
          };
        },
        ['/bin/sleep', '1000'],
      );
      const run = (...args: string[]) => under(rt, bundle, id, ['--systemd-cgroup', ...args]);
      t.teardown(() => run('delete', '--force', id));
      const started = run('run', '-d', '-b', bundle.dir, id);
      t.equal(started.status, 0, `${rt.name}: ${started.stderr}`);
      const pid = JSON.parse(run('state', id).stdout).pid as number;
      const property = (p: string): string => systemctl('show', unit, '-p', p, '--value');
      const cgroups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split(unit).join('UNIT');
      run('pause', id);
      const frozen = V1 ? knobAt(unit, 'freezer', 'freezer.state') : knobAt(unit, '', 'cgroup.freeze');
      run('resume', id);
      seenBy[rt.name] = {
        cgroups,
        properties: [
          'ActiveState',
          'Slice',
          'Delegate',
          MEMORY.property,
          'TasksMax',
          'CPUQuotaPerSecUSec',
          'TimeoutStopUSec',
          'CollectMode',
          'RuntimeMaxUSec',
          'DevicePolicy',
          'DeviceAllow',
        ].map((p) => `${p}=${property(p)}`),
        devices: V1 ? knobAt(unit, 'devices', 'devices.list').split('\n').sort() : 'v2: a program',
        limits: [knobAt(unit, 'memory', MEMORY.file), knobAt(unit, 'pids', 'pids.max')],
        frozen,
      };
      t.equal(run('delete', '--force', id).status, 0);
      t.ok(await waitFor(() => unitGone(unit), 10_000), `${rt.name}: no unit after delete`);
      t.same(
        HIERARCHIES.map((h) => path.join(h.mountPoint, 'system.slice', unit)).filter((d) => fs.existsSync(d)),
        [],
        `${rt.name}: no cgroup after delete`,
      );
    }
    // runc 1.1.5 predates the v1 misc controller (runc 1.2 added it): its line is the one that may differ.
    const miscLine = /^\d+:misc:.*$/m;
    const tsrunSeen = seenBy.tsrun as { cgroups: string };
    if (miscLine.test(tsrunSeen.cgroups)) {
      differsOnPurpose(t, 'v1-misc-cgroup');
      t.match(tsrunSeen.cgroups, /^\d+:misc:\/system\.slice\/UNIT$/m, 'tsrun: the misc hierarchy too');
    }
    // DeviceAllow as runc 1.2+ writes it for systemd 240+: a major by number ("char-136"), and every
    // device listed whether or not the host has it.  runc 1.1.5 names the major by its /proc/devices
    // group ("char-pts") and leaves out a device /sys/dev does not show (tun, without its module).
    differsOnPurpose(t, 'systemd-device-names');
    const deviceAllow = (seen: unknown): string[] =>
      (seen as { properties: string[] }).properties
        .find((p) => p.startsWith('DeviceAllow='))!
        .slice('DeviceAllow='.length)
        .split('\n')
        .map((e) => e.trim())
        .filter(Boolean);
    const asRunc14 = new Set(deviceAllow(seenBy[REFERENCE.name]).map((e) => e.replace(/^char-pts /, 'char-136 ')));
    asRunc14.add('/dev/char/10:200 rwm');
    t.same(deviceAllow(seenBy.tsrun).sort(), [...asRunc14].sort(), "DeviceAllow: runc's entries, in runc 1.2+'s names");
    const comparable = (seen: unknown): unknown => {
      const s = seen as { cgroups: string; properties: string[] };
      return {
        ...s,
        cgroups: s.cgroups.replace(miscLine, 'MISC'),
        properties: s.properties.filter((p) => !p.startsWith('DeviceAllow=')),
      };
    };
    t.same(comparable(seenBy.tsrun), comparable(seenBy[REFERENCE.name]), 'tsrun as runc');
  });

  t.test(
    'an org.systemd.property annotation systemd cannot take is refused by name, and nothing is left',
    async (t) => {
      const id = uniqueId('sd');
      const bundle = makeBundle(
        t,
        (c) => {
          c.linux!.cgroupsPath = `system.slice:tsrun-test:${id}`;
          c.annotations = { 'org.systemd.property.CollectMode': "'no-such-mode'" };
        },
        ['/bin/true'],
      );
      const r = tsrun(bundle.root, ['--systemd-cgroup', 'run', '-b', bundle.dir, id]);
      t.equal(r.status, 1);
      t.match(r.stderr, /linux\.cgroupsPath: systemd refused tsrun-test-.*\.scope: .*CollectMode/, r.stderr);
      t.ok(unitGone(SCOPE_OF(id)), 'no unit');
      t.same(noCgroupLeft(id), [], 'no cgroup');
      t.same(leftovers(bundle, id), []);
      const unreadable = makeBundle(t, (c) => (c.annotations = { 'org.systemd.property.CollectMode': 'inactive' }), [
        '/bin/true',
      ]);
      const u = tsrun(unreadable.root, ['--systemd-cgroup', 'run', '-b', unreadable.dir, uniqueId('sd')]);
      t.equal(u.status, 1);
      t.match(
        u.stderr,
        /annotations\["org\.systemd\.property\.CollectMode"\]: "inactive" is not a GVariant text value/,
      );
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
    t.same(noCgroupLeft(id), [], 'no cgroup');
    t.same(leftovers(bundle, id), []);
  });

  t.test('no cgroupsPath: tsrun-<id>.scope in system.slice', async (t) => {
    differsOnPurpose(t, 'systemd-default-unit');
    const id = uniqueId('sd');
    const bundle = makeBundle(t, () => {}, ['/bin/cat', '/proc/self/cgroup']);
    const r = tsrun(bundle.root, ['--systemd-cgroup', 'run', '-b', bundle.dir, id]);
    t.equal(r.status, 0, r.stderr);
    t.ok(inUnit(r.stdout, `tsrun-${id}.scope`), r.stdout);
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
    t.same(noCgroupLeft(id), [], 'no cgroup');
    t.same(leftovers(bundle, id), []);
  });
}
