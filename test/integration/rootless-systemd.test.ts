/**
 * --systemd-cgroup as a user (issue 20): the container is a transient
 * scope of the user's own systemd manager (user@UID.service, started
 * here by `loginctl enable-linger`), asked on the user's session bus, in
 * user.slice below the manager's cgroup, as runc places it.  scripts/test.sh
 * runs this file in the systemd VMs: on cgroup v2 the whole lifecycle,
 * beside runc as the same user; on the hybrid one the refusal (a user's
 * manager places nothing on cgroup v1, as runc says).  Where systemd is
 * not the init (this host), the refusal that says so.
 */
import { spawnSync } from 'child_process';
import t from 'tap';
import fs = require('fs');
import path = require('path');
import { detectLayout, readHierarchies } from '../../src/lib/cgroup/manager';
import { differsOnPurpose, REFERENCE, referenceInstalled } from '../compat-helpers';
import { IS_ROOT, waitFor } from '../helpers';
import { asUser, makeTestUser, type TestUser, tsrunAsUser, userBundle, userState } from '../rootless-helpers';

if (!IS_ROOT) {
  t.plan(0, 'rootless tests need root, to make the test user');
  process.exit(0);
}

const SYSTEMD = fs.existsSync('/run/systemd/system');
const UNIFIED = detectLayout(readHierarchies()) === 'unified';
const user: TestUser = makeTestUser(t);
let ids = 0;
const newId = (): string => `rls-${process.pid}-${++ids}`;
const shell = (script: string) => (c: { process?: { args?: string[] } }) => {
  c.process!.args = ['/bin/sh', '-c', script];
};

if (!SYSTEMD) {
  t.test('where systemd is not the init, --systemd-cgroup as a user is refused by name', async (t) => {
    const b = userBundle(t, user, shell('true'));
    const r = tsrunAsUser(user, ['--systemd-cgroup', 'run', '-b', b.dir, newId()]);
    t.equal(r.status, 1);
    t.match(r.stderr, /--systemd-cgroup: systemd is not the init of this host \(no \/run\/systemd\/system\)\n$/);
    t.same(userState(user), []);
  });
} else {
  // The user's manager and its session bus, as a login (or linger) starts them.
  const runtimeDir = `/run/user/${user.uid}`;
  const lingering: TestUser = { ...user, runtimeDir };
  const env = { XDG_RUNTIME_DIR: runtimeDir, DBUS_SESSION_BUS_ADDRESS: `unix:path=${runtimeDir}/bus` };
  const linger = spawnSync('loginctl', ['enable-linger', user.name], { encoding: 'utf8' });
  if (linger.status !== 0) throw new Error(`loginctl enable-linger: ${linger.stderr}`);
  t.teardown(() => {
    spawnSync('loginctl', ['disable-linger', user.name]);
    spawnSync('systemctl', ['stop', `user@${user.uid}.service`]);
  });
  const systemctlUser = (...args: string[]): string =>
    asUser(user, ['systemctl', '--user', ...args], { env }).stdout.trim();
  const asLingering = (args: string[], extra: Record<string, string> = {}) =>
    tsrunAsUser(lingering, args, { env: { ...env, ...extra } });

  t.test("the user's manager is up, with its session bus", async (t) => {
    t.ok(await waitFor(() => fs.existsSync(`${runtimeDir}/bus`), 120_000, 200), `${runtimeDir}/bus`);
    t.ok(
      await waitFor(() => /^(running|degraded)$/.test(systemctlUser('is-system-running')), 120_000, 500),
      "the user's manager has started",
    );
  });

  if (!UNIFIED) {
    t.test("on cgroup v1 a user's systemd manager places nothing: refused by name, as runc refuses it", async (t) => {
      const b = userBundle(t, user, shell('true'));
      const r = asLingering(['--systemd-cgroup', 'run', '-b', b.dir, newId()]);
      t.equal(r.status, 1);
      t.match(r.stderr, /--systemd-cgroup: a user's systemd manager can place containers on cgroup v2 only;/);
      t.same(userState(lingering), []);
      if (referenceInstalled()) {
        const runc = asUser(
          user,
          [REFERENCE.bin, '--root', `${runtimeDir}/runc`, '--systemd-cgroup', 'run', '-b', b.dir, newId()],
          {
            env,
          },
        );
        t.not(runc.status, 0, `runc refuses too: ${runc.stderr.trim()}`);
      }
    });
  } else {
    const managerCgroup = (): string => systemctlUser('show', '-p', 'ControlGroup', '--value');
    const unitDir = (unit: string, slice = 'user.slice'): string =>
      path.join('/sys/fs/cgroup', managerCgroup(), slice, unit);

    t.test(
      "a container is a scope of the user's manager, in user.slice: its limits, update, pause, delete",
      async (t) => {
        const id = newId();
        const unit = `tsrun-${id}.scope`;
        const b = userBundle(t, user, (c) => {
          c.linux!.resources = { memory: { limit: 64 << 20 }, pids: { limit: 20 } };
          shell('sleep 1000 & exec sleep 1000')(c);
        });
        const r = asLingering(['--systemd-cgroup', 'run', '-d', '-b', b.dir, id]);
        t.equal(r.status, 0, r.stderr);
        t.teardown(() => asLingering(['delete', '--force', id]));
        const dir = unitDir(unit);
        t.equal(systemctlUser('is-active', unit), 'active');
        const init = JSON.parse(asLingering(['state', id]).stdout).pid;
        t.equal(fs.readFileSync(`/proc/${init}/cgroup`, 'utf8'), `0::${dir.slice('/sys/fs/cgroup'.length)}\n`);
        t.equal(fs.readFileSync(path.join(dir, 'memory.max'), 'utf8'), `${64 << 20}\n`);
        t.equal(fs.readFileSync(path.join(dir, 'pids.max'), 'utf8'), '20\n');
        t.equal(systemctlUser('show', '-p', 'MemoryMax', '--value', unit), String(64 << 20), 'a unit property too');
        const saved = JSON.parse(fs.readFileSync(path.join(runtimeDir, 'tsrun', id, 'state.json'), 'utf8'));
        t.match(saved.cgroup, { manager: 'systemd', unit, slice: 'user.slice', userManager: true });

        t.equal(asLingering(['update', '--memory', '32m', '--pids-limit', '30', id]).status, 0);
        t.equal(fs.readFileSync(path.join(dir, 'memory.max'), 'utf8'), `${32 << 20}\n`);
        t.equal(systemctlUser('show', '-p', 'MemoryMax', '--value', unit), String(32 << 20));
        t.equal(fs.readFileSync(path.join(dir, 'pids.max'), 'utf8'), '30\n');
        t.equal(asLingering(['pause', id]).status, 0);
        t.equal(JSON.parse(asLingering(['state', id]).stdout).status, 'paused');
        t.equal(asLingering(['resume', id]).status, 0);
        const ps = asLingering(['ps', '--format', 'json', id]);
        t.equal(JSON.parse(ps.stdout).length, 2, 'ps: the init and the sleep it started');
        const stats = asLingering(['events', '--stats', id]);
        t.equal(JSON.parse(stats.stdout).data.pids.current, 2);
        // runuser runs in this test's service, outside the user's subtree: it may not move a process in there.
        differsOnPurpose(t, 'rootless-exec-outside-cgroup');
        const exec = asLingering(['exec', id, 'true']);
        t.equal(exec.status, 0, exec.stderr);
        t.match(exec.stderr, /warning: rootless: this user may not move the process into .* as with runc/);
        t.equal(asLingering(['kill', '--all', id, 'KILL']).status, 0);
        t.ok(await waitFor(() => !fs.existsSync(`/proc/${init}`)), 'the init died');
        t.equal(asLingering(['delete', id]).status, 0);
        t.ok(await waitFor(() => !fs.existsSync(dir)), 'its cgroup is gone');
        t.not(systemctlUser('is-active', unit), 'active', 'its unit is gone');
        t.same(userState(lingering), []);
      },
    );

    t.test('a slice of the config: "slice:prefix:name" below the manager', async (t) => {
      const id = newId();
      const b = userBundle(t, user, (c) => {
        c.linux!.cgroupsPath = 'user-tsrun.slice:tsrun-test:' + id;
        shell('grep ^0:: /proc/self/cgroup')(c);
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
      });
      const r = asLingering(['--systemd-cgroup', 'run', '-b', b.dir, id]);
      t.equal(r.status, 0, r.stderr);
      t.equal(r.stdout, `0::${managerCgroup()}/user.slice/user-tsrun.slice/tsrun-test-${id}.scope\n`);
      t.same(userState(lingering), []);
    });

    t.test('runc as the same user puts the container in the same place', { skip: !referenceInstalled() }, async (t) => {
      // Without a cgroup namespace runc binds the host's whole /sys/fs/cgroup; tsrun the init's own cgroup.
      differsOnPurpose(t, 'rootless-cgroup2-mount');
      const out: Record<string, string> = {};
      for (const runtime of ['runc', 'tsrun']) {
        const id = newId();
        const b = userBundle(t, user, (c) => {
          c.linux!.cgroupsPath = `:cmp:${id}`;
          c.linux!.resources = { memory: { limit: 48 << 20 } };
          c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'cgroup');
          shell(
            'grep ^0:: /proc/self/cgroup; cat /sys/fs/cgroup/memory.max 2>/dev/null; ls /sys/fs/cgroup | grep -c slice || true',
          )(c);
        });
        const argv =
          runtime === 'runc'
            ? [REFERENCE.bin, '--root', `${runtimeDir}/runc`, '--systemd-cgroup', 'run', '-b', b.dir, id]
            : [`--systemd-cgroup`, 'run', '-b', b.dir, id];
        const r = runtime === 'runc' ? asUser(user, argv, { env }) : asLingering(argv);
        t.equal(r.status, 0, `${runtime}: ${r.stderr}`);
        out[runtime] = r.stdout.split(id).join('ID');
      }
      const [placedByRunc, ...runcMount] = out.runc.split('\n');
      const [placedByTsrun, ...tsrunMount] = out.tsrun.split('\n');
      t.equal(placedByTsrun, placedByRunc, 'the same cgroup');
      t.match(placedByTsrun, /\/user\.slice\/cmp-ID\.scope$/);
      t.same(tsrunMount, [String(48 << 20), '0', ''], "tsrun's /sys/fs/cgroup: the container's own, its limit there");
      t.same(runcMount, [`${Number(runcMount[0])}`, ''], "runc's: the host's root, its slices and no memory.max");
      t.ok(Number(runcMount[0]) > 0);
    });

    t.test('no session bus: refused by name, nothing left', async (t) => {
      const b = userBundle(t, user, shell('true'));
      const id = newId();
      // Its own runtime dir (no bus there) and no address.
      const r = tsrunAsUser(user, ['--systemd-cgroup', 'run', '-b', b.dir, id]);
      t.equal(r.status, 1);
      t.match(
        r.stderr,
        `--systemd-cgroup: no session bus to reach this user's systemd manager: DBUS_SESSION_BUS_ADDRESS is not set and ${user.runtimeDir}/bus does not exist`,
      );
      t.same(userState(user), []);
      const tcp = asLingering(['--systemd-cgroup', 'run', '-b', b.dir, id], {
        DBUS_SESSION_BUS_ADDRESS: 'tcp:host=127.0.0.1,port=1',
      });
      t.equal(tcp.status, 1);
      t.match(tcp.stderr, /DBUS_SESSION_BUS_ADDRESS "tcp:host=127\.0\.0\.1,port=1" has no unix:path= address/);
      t.same(userState(lingering), []);
    });
  }
}
