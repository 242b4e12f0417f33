/**
 * The CVE cases that apply to a rootless caller, rerun as a user made for
 * the test (issue 20): what the user's container may reach is the user's
 * own, so these guard its files and its tsrun processes.
 *
 *  - CVE-2019-5736: an entrypoint or exec target "#!/proc/self/exe" runs
 *    the sealed helper, which refuses; node never runs it as JavaScript.
 *  - CVE-2024-21626: host directories the caller leaks on fds 3..30 never
 *    become the process's cwd (process.cwd and exec --cwd /proc/self/fd/N),
 *    and never reach the process.
 *  - The created init is not dumpable: the user itself, outside, cannot
 *    read its exe or open its fds through /proc (no CAP_SYS_PTRACE).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, type RunResult } from '../helpers';
import { asUser, makeTestUser, type TestUser, tsrunAsUser, userBundle, userState } from '../rootless-helpers';

if (!IS_ROOT) {
  t.plan(0, 'rootless tests need root, to make the test user');
  process.exit(0);
}

const user: TestUser = makeTestUser(t);
let ids = 0;
const newId = (): string => `rlcve-${process.pid}-${++ids}`;
const EVIL = '#!/proc/self/exe\nrequire("fs").writeFileSync("/pwned", "x"); console.log("NODE-RAN");\n';
const MARKER = `rootfs-marker-${process.pid}`;
const HOST_MARKER = `host-only-${process.pid}`;

/** A file the user owns in its rootfs. */
function plant(rootfs: string, name: string, text: string, mode = 0o644): void {
  const file = path.join(rootfs, name);
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, text, { mode });
  fs.chownSync(file, user.uid, user.gid);
}

t.test(
  'CVE-2019-5736: "#!/proc/self/exe" as entrypoint and exec target runs the sealed helper, which refuses',
  async (t) => {
    for (const args of [['/evil'], ['/bin/sh', '-c', 'echo shell-ran']]) {
      const b = userBundle(t, user, (c) => {
        c.process!.args = args;
      });
      plant(b.rootfs, 'evil', EVIL, 0o755);
      plant(b.rootfs, 'bin/sh', EVIL, 0o755);
      const r = tsrunAsUser(user, ['run', '-b', b.dir, newId()]);
      t.not(r.status, 0, `${args[0]}: the container does not succeed`);
      t.notMatch(r.stdout + r.stderr, /NODE-RAN|shell-ran/, `${args[0]}: neither node nor a shell ran it`);
      t.notOk(fs.existsSync(path.join(b.rootfs, 'pwned')), `${args[0]}: the script's JavaScript did not run`);
      t.same(userState(user), []);
    }
    const b = userBundle(t, user, (c) => {
      c.process!.args = ['sleep', '1000'];
    });
    plant(b.rootfs, 'evil', EVIL, 0o755);
    const id = newId();
    t.equal(tsrunAsUser(user, ['run', '-d', '-b', b.dir, id]).status, 0);
    t.teardown(() => tsrunAsUser(user, ['delete', '--force', id]));
    const exec = tsrunAsUser(user, ['exec', id, '/evil']);
    t.not(exec.status, 0);
    t.notMatch(exec.stdout + exec.stderr, /NODE-RAN/);
    t.notOk(fs.existsSync(path.join(b.rootfs, 'pwned')));

    // The created init: the user cannot look into it from outside (not dumpable), though it runs as the user.
    const created = newId();
    t.equal(tsrunAsUser(user, ['create', '-b', b.dir, created]).status, 0);
    t.teardown(() => tsrunAsUser(user, ['delete', '--force', created]));
    const pid = JSON.parse(tsrunAsUser(user, ['state', created]).stdout).pid as number;
    const peek = asUser(user, ['/bin/sh', '-c', `readlink /proc/${pid}/exe; ls /proc/${pid}/fd`]);
    t.equal(peek.stdout, '', `the user reads neither its exe nor its fds: ${peek.stderr.trim()}`);
    t.equal(tsrunAsUser(user, ['delete', '--force', created]).status, 0);
  },
);

t.test('CVE-2024-21626: host directories the user leaks on fds 3..30 never become the cwd', async (t) => {
  const hostDir = fs.mkdtempSync('/tmp/tsrun-21626-rl-');
  t.teardown(() => fs.rmSync(hostDir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(hostDir, HOST_MARKER), 'host');
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, hostDir]);
  const dirFds = [hostDir, '/', '/tmp', `/home/${user.name}`].map((d) =>
    fs.openSync(d, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY),
  );
  t.teardown(() => dirFds.forEach((fd) => fs.closeSync(fd)));
  const leaked = Array.from({ length: 28 }, (_, i) => dirFds[i % dirFds.length]);
  const probe = 'echo "cwd=$(pwd)"; ls /proc/self/fd | tr "\\n" " "; echo; cd ../../../../../../../..; ls -a';
  const outcome = (r: RunResult, what: string): string => {
    if (r.status !== 0) {
      t.match(r.stderr, /cwd/, `${what}: fails naming the cwd`);
      t.notMatch(r.stdout, /cwd=/, `${what}: the process did not run`);
      return 'failed';
    }
    const lines = r.stdout.split('\n');
    t.match(lines[0], /^cwd=\//, `${what}: a path of the container`);
    t.ok(lines.includes(MARKER), `${what}: ".." leads to the container's root`);
    t.notOk(lines.includes(HOST_MARKER) || lines.includes('home'), `${what}: never to a host directory`);
    return 'inside';
  };
  const b = userBundle(t, user, (c) => {
    c.process!.args = ['/bin/sh', '-c', probe];
  });
  plant(b.rootfs, MARKER, '');
  const counts: Record<string, number> = {};
  for (let n = 3; n <= 30; n++) {
    b.config.process!.cwd = `/proc/self/fd/${n}`;
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config));
    const r = tsrunAsUser(user, ['run', '-b', b.dir, newId()], { extraFds: leaked });
    const o = outcome(r, `cwd /proc/self/fd/${n}`);
    counts[o] = (counts[o] ?? 0) + 1;
  }
  t.comment(`outcomes: ${JSON.stringify(counts)}`);
  t.same(userState(user), []);

  // The process sees only its stdio, and an exec --cwd into a leaked fd fails or stays inside.
  b.config.process!.cwd = '/';
  b.config.process!.args = ['sleep', '1000'];
  fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config));
  const id = newId();
  t.equal(tsrunAsUser(user, ['run', '-d', '-b', b.dir, id], { extraFds: leaked }).status, 0);
  t.teardown(() => tsrunAsUser(user, ['delete', '--force', id]));
  for (const n of [3, 4, 5, 6, 10, 30]) {
    const r = tsrunAsUser(user, ['exec', '--cwd', `/proc/self/fd/${n}`, id, '/bin/sh', '-c', probe], {
      extraFds: leaked,
    });
    outcome(r, `exec --cwd /proc/self/fd/${n}`);
  }
  const fds = tsrunAsUser(user, ['exec', id, 'ls', '/proc/self/fd'], { extraFds: leaked });
  t.same(fds.stdout.split('\n').filter(Boolean).map(Number).sort(), [0, 1, 2, 3], "stdio and ls's own directory fd");
});
