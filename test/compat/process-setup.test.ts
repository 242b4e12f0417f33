/**
 * Issue 15, item 3 (and HOME, from item 8): how the process is set up,
 * compared with runc 1.1.5 scenario by scenario.
 *  - the cwd is entered before the user switch (a cwd only root may enter
 *    works for another user), and made when it is missing;
 *  - HOME comes from the container's /etc/passwd when the config names
 *    none (run and exec), "/" when the user has no line;
 *  - the process's stdio pipes and its pty become its user's, so it can
 *    reopen them; a host file given as stdio does not (runc's does:
 *    docs/differences-from-runc.md, "stdio-chown");
 *  - a read-only /dev is made read-only after its devices and mounts;
 *  - with a user namespace, a bind source under a directory the
 *    container's root cannot traverse still binds;
 *  - hooks get runc's working directory and environment: the runtime's
 *    env when they name none; createContainer in the rootfs with the
 *    process's env, startContainer in the process's cwd with its env.
 * Each scenario failed (or differed from runc) before.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { native } from '../../src/lib/native';
import { drainPty, IS_ROOT, makeBundle, runCommand, tempDir, uniqueId } from '../helpers';
import {
  cleanupBoth,
  differsOnPurpose,
  idFor,
  referenceInstalled,
  RUNTIMES,
  seen,
  under,
  underBoth,
} from '../compat-helpers';
import { onTty } from '../engine-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const asUser =
  (uid: number) =>
  (c: Config): void => {
    c.process!.user = { uid, gid: uid };
  };

t.test('cwd: one only root may enter works for another user (run and exec); a missing one is made', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      asUser(1000)(c);
      c.process!.cwd = '/root';
    },
    ['/bin/sh', '-c', 'pwd'],
  );
  fs.chmodSync(path.join(bundle.rootfs, 'root'), 0o700);
  const id = uniqueId('cwdroot');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same(seen(r.tsrun), seen(r.reference), `run: as the reference: ${r.tsrun.stderr}`);
  t.equal(r.tsrun.stdout, '/root\n');

  const running = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  fs.chmodSync(path.join(running.rootfs, 'root'), 0o700);
  const rid = uniqueId('cwdx');
  cleanupBoth(t, running, rid);
  for (const rt of RUNTIMES)
    t.equal(
      under(rt, running, rid, ['run', '--detach', '-b', running.dir, '%ID%']).status,
      0,
      `${rt.name}: run --detach`,
    );
  const e = underBoth(running, rid, ['exec', '--user', '1000:1000', '--cwd', '/root', '%ID%', '/bin/sh', '-c', 'pwd']);
  t.same(seen(e.tsrun), seen(e.reference), `exec --user --cwd: as the reference: ${e.tsrun.stderr}`);
  t.equal(e.tsrun.stdout, '/root\n');
  const missing = underBoth(running, rid, ['exec', '--cwd', '/no/such/dir', '%ID%', '/bin/true']);
  t.not(missing.reference.status, 0, 'exec into a missing cwd: the reference refuses it');
  t.not(missing.tsrun.status, 0, '...and so does tsrun (only the init gets its cwd made)');

  for (const rt of RUNTIMES) {
    const made = makeBundle(
      t,
      (c) => {
        c.process!.cwd = '/made/for/me';
      },
      ['/bin/sh', '-c', 'pwd'],
    );
    const mid = uniqueId('cwdmade');
    cleanupBoth(t, made, mid);
    const m = under(rt, made, mid, ['run', '-b', made.dir, '%ID%']);
    t.same(seen(m), { status: 0, stdout: '/made/for/me\n' }, `${rt.name}: a missing cwd is made: ${m.stderr}`);
    const st = fs.statSync(path.join(made.rootfs, 'made', 'for', 'me'));
    t.same({ mode: st.mode & 0o7777, uid: st.uid }, { mode: 0o755, uid: 0 }, `${rt.name}: 0755, root's`);
  }
});

t.test("HOME: from the container's /etc/passwd when the config names none (run and exec)", async (t) => {
  const cases: Array<[string, (c: Config) => void, string]> = [
    ['root', asUser(0), '/root'],
    ['uid 1000 (tester)', asUser(1000), '/home/tester'],
    ['a uid with no line', asUser(4242), '/'],
    [
      'the config names one',
      (c) => {
        asUser(1000)(c);
        c.process!.env = [...(c.process!.env ?? []), 'HOME=/mine'];
      },
      '/mine',
    ],
  ];
  for (const [label, mutate, home] of cases) {
    const bundle = makeBundle(t, mutate, ['/bin/sh', '-c', 'echo "$HOME"']);
    const id = uniqueId('home');
    cleanupBoth(t, bundle, id);
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.same(seen(r.tsrun), seen(r.reference), `${label}: as the reference: ${r.tsrun.stderr}`);
    t.equal(r.tsrun.stdout, `${home}\n`, label);
  }
  const running = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const rid = uniqueId('homex');
  cleanupBoth(t, running, rid);
  for (const rt of RUNTIMES)
    t.equal(
      under(rt, running, rid, ['run', '--detach', '-b', running.dir, '%ID%']).status,
      0,
      `${rt.name}: run --detach`,
    );
  const e = underBoth(running, rid, ['exec', '--user', '1000:1000', '%ID%', '/bin/sh', '-c', 'echo "$HOME"']);
  t.same(seen(e.tsrun), seen(e.reference), `exec --user 1000: as the reference: ${e.tsrun.stderr}`);
  t.equal(e.tsrun.stdout, '/home/tester\n');

  // A FIFO planted as /etc/passwd must not stall the set-up (it is read only when regular).
  const fifo = makeBundle(t, asUser(1000), ['/bin/sh', '-c', 'echo "$HOME"']);
  fs.rmSync(path.join(fifo.rootfs, 'etc', 'passwd'));
  spawnSync('mkfifo', [path.join(fifo.rootfs, 'etc', 'passwd')]);
  const fid = uniqueId('homefifo');
  cleanupBoth(t, fifo, fid);
  const f = under(RUNTIMES[1], fifo, fid, ['run', '-b', fifo.dir, '%ID%'], { timeoutMs: 20_000 });
  t.same(seen(f), { status: 0, stdout: '/\n' }, `a FIFO for /etc/passwd: HOME=/, no hang: ${f.signal ?? f.stderr}`);
});

t.test("stdio: a pipe and the pty become the user's (reopenable); a host file stays root's", async (t) => {
  const bundle = makeBundle(t, asUser(1000), ['/bin/sh', '-c', 'echo through-dev-stdout > /dev/stdout']);
  const id = uniqueId('stdio');
  cleanupBoth(t, bundle, id);
  const piped = Object.fromEntries(
    RUNTIMES.map((rt) => [
      rt.name,
      runCommand([
        '/bin/sh',
        '-c',
        `${rt.bin} --root ${bundle.root}-${rt.name} run -b ${bundle.dir} ${idFor(rt, id)} | cat`,
      ]),
    ]),
  );
  t.same(seen(piped.tsrun), seen(piped.reference), `a pipe: as the reference: ${piped.tsrun.stderr}`);
  t.equal(piped.tsrun.stdout, 'through-dev-stdout\n');

  // A terminal from --console-socket: the pty slave is the process's user's.
  for (const rt of RUNTIMES) {
    const tty = makeBundle(
      t,
      (c) => {
        asUser(1000)(c);
        c.process!.terminal = true;
      },
      ['/bin/sh', '-c', 'stat -c %u "$(tty)"'],
    );
    const tid = uniqueId('ptyown');
    cleanupBoth(t, tty, tid);
    const socketPath = path.join(tty.dir, 'console.sock');
    const listener = native.listenUnix(socketPath);
    t.teardown(() => native.close(listener));
    const created = under(rt, tty, tid, ['create', '-b', tty.dir, '--console-socket', socketPath, '%ID%']);
    t.equal(created.status, 0, `${rt.name}: create: ${created.stderr}`);
    const conn = native.acceptUnix(listener, 5_000);
    const master = native.recvFd(conn, 5_000);
    native.close(conn);
    t.equal(under(rt, tty, tid, ['start', '%ID%']).status, 0, `${rt.name}: start`);
    const output = drainPty(master);
    fs.closeSync(master);
    t.equal(output.trim(), '1000', `${rt.name}: the pty slave belongs to uid 1000`);
    under(rt, tty, tid, ['delete', '--force', '%ID%']);
  }

  differsOnPurpose(t, 'stdio-chown');
  const file = makeBundle(t, asUser(1000), ['/bin/sleep', '1000']);
  const fid = uniqueId('stdiofile');
  cleanupBoth(t, file, fid);
  const dir = tempDir(t, 'tsrun-stdio-');
  for (const rt of RUNTIMES) {
    const out = path.join(dir, `out-${rt.name}`);
    const r = runCommand([
      '/bin/sh',
      '-c',
      `${rt.bin} --root ${file.root}-${rt.name} run --detach -b ${file.dir} ${idFor(rt, fid)} > ${out} 2>&1 < /dev/null`,
    ]);
    t.equal(r.status, 0, `${rt.name}: run --detach: ${r.stderr}`);
  }
  t.equal(
    fs.statSync(path.join(dir, 'out-reference')).uid,
    1000,
    "the reference hands the host file to the container's user",
  );
  t.equal(fs.statSync(path.join(dir, 'out-tsrun')).uid, 0, 'tsrun leaves a host file as it was');

  // A named FIFO is a host file too (only anonymous pipes are the process's own).
  const fifoBundle = makeBundle(t, asUser(1000), ['/bin/sleep', '1000']);
  const fid2 = uniqueId('stdiofifo');
  cleanupBoth(t, fifoBundle, fid2);
  const fifo = path.join(dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  const r = runCommand([
    '/bin/sh',
    '-c',
    `exec 3<>${fifo}; ${RUNTIMES[1].bin} --root ${fifoBundle.root}-tsrun run --detach -b ${fifoBundle.dir} ${idFor(RUNTIMES[1], fid2)} >&3 2>/dev/null </dev/null`,
  ]);
  t.equal(r.status, 0, `run --detach with a named FIFO as stdout: ${r.stderr}`);
  t.equal(fs.statSync(fifo).uid, 0, 'tsrun leaves a host FIFO as it was');
});

t.test('a read-only /dev is made read-only after its devices and mounts, as in runc', async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      const dev = c.mounts!.find((m) => m.destination === '/dev')!;
      dev.options = [...(dev.options ?? []), 'ro'];
    },
    [
      '/bin/sh',
      '-c',
      'ls /dev | tr "\\n" " "; echo; grep " /dev " /proc/self/mountinfo | cut -d" " -f5-6; touch /dev/x 2>/dev/null || echo read-only',
    ],
  );
  const id = uniqueId('devro');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.tsrun.stderr}`);
  t.match(r.tsrun.stdout, /\bnull\b.*\bpts\b.*\n\/dev ro,nosuid\nread-only\n/);
});

t.test('a user namespace: a bind source under a directory its root cannot traverse still binds', async (t) => {
  const secret = tempDir(t, 'tsrun-secret-');
  fs.mkdirSync(path.join(secret, 'inner'));
  fs.writeFileSync(path.join(secret, 'inner', 'f'), 'data\n');
  fs.chmodSync(secret, 0o700);
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces!.push({ type: 'user' });
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.mounts!.push({
        destination: '/mnt',
        type: 'bind',
        source: path.join(secret, 'inner'),
        options: ['rbind', 'ro'],
      });
    },
    ['/bin/sh', '-c', 'cat /mnt/f; touch /mnt/g 2>/dev/null || echo read-only'],
  );
  spawnSync('chown', ['-R', '100000:100000', bundle.rootfs]);
  fs.chmodSync(bundle.dir, 0o755); // the rootfs itself must be reachable (under runc too)
  const id = uniqueId('usernsbind');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.tsrun.stderr}`);
  t.equal(r.tsrun.stdout, 'data\nread-only\n');
});

t.test('a user namespace: root and another user reopen their stdio pipes (run and exec), as under runc', async (t) => {
  /** A bundle with a user namespace of its own (0 -> 100000), its process run as `user`. */
  const usernsBundle = (user: number, script: string) => {
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.namespaces!.push({ type: 'user' });
        c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        c.process!.user = { uid: user, gid: user };
      },
      ['/bin/sh', '-c', script],
    );
    spawnSync('chown', ['-R', '100000:100000', bundle.rootfs]);
    fs.chmodSync(bundle.dir, 0o755);
    return bundle;
  };
  /** A shell command line for each runtime, run through sh: the results by runtime name. */
  const underEach = (command: (rt: (typeof RUNTIMES)[number]) => string) =>
    Object.fromEntries(RUNTIMES.map((rt) => [rt.name, runCommand(['/bin/sh', '-c', command(rt)])]));
  for (const user of [0, 1000]) {
    // A detached container, then an exec whose output is piped (tsrun's pipes, runc's).
    const bundle = usernsBundle(user, 'sleep 1000');
    const id = uniqueId('usernsstdio');
    cleanupBoth(t, bundle, id);
    const r = underEach((rt) => {
      const root = `--root ${bundle.root}-${rt.name}`;
      return (
        `${rt.bin} ${root} run -d -b ${bundle.dir} ${idFor(rt, id)} </dev/null >/dev/null 2>&1; ` +
        `${rt.bin} ${root} exec ${idFor(rt, id)} /bin/sh -c 'echo exec > /dev/stdout; echo err > /dev/stderr' 2>&1 | cat`
      );
    });
    // Two pipes copied apart: their lines may come in either order.
    const lines = (out: string) => out.split('\n').filter(Boolean).sort();
    t.same(lines(r.tsrun.stdout), lines(r.reference.stdout), `uid ${user}, exec: as the reference: ${r.tsrun.stdout}`);
    t.equal(r.tsrun.status, r.reference.status);
    t.same(lines(r.tsrun.stdout), ['err', 'exec'], `uid ${user}: exec reopens its pipes`);
    for (const rt of RUNTIMES)
      runCommand([rt.bin, '--root', `${bundle.root}-${rt.name}`, 'delete', '--force', idFor(rt, id)]);
    // run in the foreground, its output piped.
    const fg = usernsBundle(user, 'echo through-dev-stdout > /dev/stdout');
    const fid = uniqueId('usernsfg');
    cleanupBoth(t, fg, fid);
    const f = underEach((rt) => `${rt.bin} --root ${fg.root}-${rt.name} run -b ${fg.dir} ${idFor(rt, fid)} | cat`);
    t.same(seen(f.tsrun), seen(f.reference), `uid ${user}, run: as the reference: ${f.tsrun.stderr}`);
    t.equal(f.tsrun.stdout, 'through-dev-stdout\n', `uid ${user}: run reopens its pipe`);
  }
});

t.test("hooks: runc's working directory and environment, for every kind", async (t) => {
  const dir = tempDir(t, 'tsrun-hooks-');
  fs.chmodSync(dir, 0o755);
  const script = path.join(dir, 'hook.sh');
  // Records where it ran and what it was given (less what the shell adds itself).
  const body =
    '#!/bin/sh\n{ echo "$1 cwd=$(pwd)"; env | grep -v "^_=\\|^PWD=\\|^OLDPWD=\\|^SHLVL=" | sort | tr "\\n" " "; echo; } >> "$2"\n';
  fs.writeFileSync(script, body, { mode: 0o755 });
  const outputs: Record<string, string> = {};
  for (const rt of RUNTIMES) {
    const out = path.join(dir, `out-${rt.name}`);
    outputs[rt.name] = out;
    const bundle = makeBundle(
      t,
      (c) => {
        c.root!.readonly = false;
        c.process!.cwd = '/etc';
        c.process!.env = ['PATH=/bin', 'FROM_CONFIG=1'];
        const hook = (kind: string) => [{ path: script, args: ['hook.sh', kind, out] }];
        c.hooks = {
          prestart: hook('prestart'),
          createRuntime: hook('createRuntime'),
          createContainer: hook('createContainer'),
          // Runs after pivot_root: the script and its output live in the container.
          startContainer: [{ path: '/hook.sh', args: ['hook.sh', 'startContainer', '/tmp/out'] }],
          poststart: hook('poststart'),
          poststop: [
            ...hook('poststop'),
            { path: script, args: ['hook.sh', 'poststop-own-env', out], env: ['ONLY=this'] },
          ],
        };
      },
      ['/bin/sleep', '0.3'],
    );
    fs.writeFileSync(path.join(bundle.rootfs, 'hook.sh'), body, { mode: 0o755 });
    const id = uniqueId('hookenv');
    cleanupBoth(t, bundle, id);
    const r = under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%'], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CALLER_VAR: 'yes' },
      cwd: '/',
    });
    t.equal(r.status, 0, `${rt.name}: run: ${r.stderr}`);
    const seenInside = fs.readFileSync(path.join(bundle.rootfs, 'tmp', 'out'), 'utf8');
    outputs[rt.name] = fs.readFileSync(out, 'utf8').split(bundle.dir).join('BUNDLE') + seenInside;
  }
  t.equal(outputs.tsrun, outputs.reference, 'every hook: the same cwd and env as under the reference');
  t.match(
    outputs.tsrun,
    /prestart cwd=BUNDLE\nCALLER_VAR=yes PATH=\S+ \n/,
    "a runtime hook with no env: the runtime's, in the bundle",
  );
  t.match(
    outputs.tsrun,
    /createContainer cwd=BUNDLE\/rootfs\nFROM_CONFIG=1 PATH=\/bin \n/,
    "createContainer: the rootfs, the process's env",
  );
  t.match(
    outputs.tsrun,
    /startContainer cwd=\/etc\nFROM_CONFIG=1 HOME=\/root PATH=\/bin \n/,
    "startContainer: the process's cwd and env",
  );
  t.match(outputs.tsrun, /poststop-own-env cwd=BUNDLE\nONLY=this \n/, 'a hook with an env: that env alone');
});

t.test(
  "runtime hooks of a separate start run in the bundle, a separate delete's where its caller is, as in runc",
  async (t) => {
    const dir = tempDir(t, 'tsrun-hookcwd-');
    const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
    const id = uniqueId('hookcwd');
    cleanupBoth(t, bundle, id);
    for (const rt of RUNTIMES) {
      const record = (kind: string) => [
        { path: '/bin/sh', args: ['sh', '-c', `echo "$0 $(pwd)" >> ${dir}/${rt.name}`, kind] },
      ];
      bundle.config.hooks = { poststart: record('poststart'), poststop: record('poststop') };
      fs.writeFileSync(path.join(bundle.dir, 'config.json'), JSON.stringify(bundle.config));
      for (const verb of [
        ['create', '-b', bundle.dir, '%ID%'],
        ['start', '%ID%'],
        ['delete', '--force', '%ID%'],
      ]) {
        const r = under(rt, bundle, id, verb, { cwd: '/' });
        t.equal(r.status, 0, `${rt.name}: ${verb[0]} from /: ${r.stderr}`);
      }
    }
    t.equal(
      fs.readFileSync(path.join(dir, 'tsrun'), 'utf8'),
      fs.readFileSync(path.join(dir, 'reference'), 'utf8'),
      'as the reference',
    );
    t.equal(fs.readFileSync(path.join(dir, 'tsrun'), 'utf8'), `poststart ${bundle.dir}\npoststop /\n`);
  },
);

t.test(
  "foreground run and exec without a terminal: the process gets pipes of its own, never the caller's terminal or files",
  async (t) => {
    // What each of fds 0-2 is, and whether it is a terminal (TIOCSTI through it would type into the caller's shell).
    const probe =
      'for fd in 0 1 2; do l=$(readlink /proc/self/fd/$fd); echo "$fd ${l%%:*}"; done; [ -t 0 ] && echo STDIN-IS-A-TERMINAL; cat; echo "out-after-stdin"; echo "to-stderr" >&2';
    const bundle = makeBundle(
      t,
      (c) => {
        c.root!.readonly = false;
      },
      ['/bin/sh', '-c', probe],
    );
    const running = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
    const dir = tempDir(t, 'tsrun-fgio-');
    const outputs: Record<string, unknown> = {};
    for (const rt of RUNTIMES) {
      const id = uniqueId('fgio');
      cleanupBoth(t, bundle, id);
      const rid = uniqueId('fgiox');
      cleanupBoth(t, running, rid);
      const root = `${bundle.root}-${rt.name}`;
      // On a terminal (script's pty): stdin, stdout and stderr are that terminal.
      const onTerminal = onTty([rt.bin, '--root', root, 'run', '-b', bundle.dir, idFor(rt, id)]);
      under(rt, bundle, id, ['delete', '--force', '%ID%']);
      // With host files: stdin from one, stdout and stderr to another.
      const input = path.join(dir, `in-${rt.name}`);
      const out = path.join(dir, `out-${rt.name}`);
      fs.writeFileSync(input, 'from-a-file\n');
      const files = runCommand([
        '/bin/sh',
        '-c',
        `${rt.bin} --root ${root} run -b ${bundle.dir} ${idFor(rt, id)} < ${input} > ${out} 2>&1; echo "status=$?"`,
      ]);
      t.equal(
        under(rt, running, rid, ['run', '--detach', '-b', running.dir, '%ID%'], { stdin: undefined }).status,
        0,
        `${rt.name}: run --detach`,
      );
      const exec = onTty([
        rt.bin,
        '--root',
        `${running.root}-${rt.name}`,
        'exec',
        idFor(rt, rid),
        '/bin/sh',
        '-c',
        probe,
      ]);
      // Sorted: stdout and stderr are two pipes, copied each on its own, so their lines may interleave either way (under runc too).
      const lines = (text: string): string => text.replace(/\r/g, '').split('\n').filter(Boolean).sort().join('\n');
      outputs[rt.name] = {
        onTerminal: lines(onTerminal.stdout),
        files: lines(files.stdout + fs.readFileSync(out, 'utf8')),
        exec: lines(exec.stdout),
      };
    }
    t.same(outputs.tsrun, outputs.reference, 'as the reference');
    const expected = '0 pipe\n1 pipe\n2 pipe\nout-after-stdin\nto-stderr';
    t.same(outputs.tsrun, {
      onTerminal: expected,
      files: '0 pipe\n1 pipe\n2 pipe\nfrom-a-file\nout-after-stdin\nstatus=0\nto-stderr',
      exec: expected,
    });
    t.notMatch(JSON.stringify(outputs.tsrun), /STDIN-IS-A-TERMINAL/, "the caller's terminal never reaches the process");
  },
);

t.test(
  'foreground pipes: a megabyte out, a megabyte in, and a process that never reads its stdin, as under the reference',
  async (t) => {
    const dir = tempDir(t, 'tsrun-fgbig-');
    const input = path.join(dir, 'input');
    fs.writeFileSync(input, Buffer.alloc(1 << 20, 'x'));
    const cases: Array<[string, string]> = [
      ['out', 'yes 0123456789 | head -c 1048576; echo; echo done >&2'],
      ['in', 'wc -c'],
      ['never-reads', 'echo ignoring-stdin'],
    ];
    for (const [name, script] of cases) {
      const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', script]);
      const id = uniqueId(`fgbig-${name}`);
      cleanupBoth(t, bundle, id);
      const results: Record<string, unknown> = {};
      for (const rt of RUNTIMES) {
        const out = path.join(dir, `${name}-${rt.name}`);
        const r = runCommand(
          [
            '/bin/sh',
            '-c',
            `${rt.bin} --root ${bundle.root}-${rt.name} run -b ${bundle.dir} ${idFor(rt, id)} < ${input} > ${out}; echo "status=$?"`,
          ],
          { timeoutMs: 30_000 },
        );
        results[rt.name] = {
          status: r.status,
          said: r.stdout + r.stderr,
          size: fs.statSync(out).size,
          head: fs.readFileSync(out, 'utf8').slice(0, 40),
        };
      }
      t.same(results.tsrun, results.reference, `${name}: as the reference`);
      t.match(results.tsrun, { status: 0, said: /status=0/ }, `${name}: no hang, status 0`);
    }
  },
);

t.test(
  'foreground pipes: a reader of our stdout that goes away ends the writer (SIGPIPE), not tsrun, as under the reference',
  async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', 'yes; echo "yes ended" >&2']);
    const id = uniqueId('fgpipe');
    cleanupBoth(t, bundle, id);
    const results: Record<string, unknown> = {};
    for (const rt of RUNTIMES) {
      // pipefail is not in dash: the runtime's status comes through a file.
      const r = runCommand(
        [
          '/bin/bash',
          '-c',
          `set -o pipefail; ${rt.bin} --root ${bundle.root}-${rt.name} run -b ${bundle.dir} ${idFor(rt, id)} | head -c 4; echo " status=$?"`,
        ],
        { timeoutMs: 30_000 },
      );
      results[rt.name] = { status: r.status, stdout: r.stdout, stderr: r.stderr.replace(/time=.*\n/g, '') };
    }
    t.same(results.tsrun, results.reference, 'as the reference');
    t.match(results.tsrun, { status: 0, stdout: /^y\ny\n status=0\n$/, stderr: 'yes ended\n' });
  },
);

t.test(
  "hooks run by the helper: their output never reaches the container's stdio (as runc's); a failing one's last line is in the error",
  async (t) => {
    const say = (what: string): { path: string; args: string[] } => ({
      path: '/bin/sh',
      args: ['sh', '-c', `echo ${what}-out; echo ${what}-err >&2; head -c 100000 /dev/zero`],
    });
    const bundle = makeBundle(
      t,
      (c) => {
        c.hooks = { createContainer: [say('createContainer')], startContainer: [say('startContainer')] };
      },
      ['/bin/echo', 'main'],
    );
    const id = uniqueId('hookout');
    cleanupBoth(t, bundle, id);
    // More than a pipe holds: a hook's output must not stall the create either.
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%'], { timeoutMs: 30_000 });
    t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.tsrun.stderr}`);
    t.same(seen(r.tsrun), { status: 0, stdout: 'main\n' }, "only the program's output");
    t.notMatch(r.tsrun.stderr, /createContainer-err|startContainer-err/, 'nor on stderr');

    const failing = makeBundle(
      t,
      (c) => {
        c.hooks = {
          startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'echo first >&2; echo the-reason >&2; exit 3'] }],
        };
      },
      ['/bin/echo', 'main'],
    );
    const fid = uniqueId('hookwhy');
    cleanupBoth(t, failing, fid);
    const f = under(RUNTIMES[1], failing, fid, ['run', '-b', failing.dir, '%ID%']);
    t.equal(f.status, 1);
    t.match(
      f.stderr,
      /startContainer hook \/bin\/sh exited with status 3 \(stderr: the-reason\)/,
      "the hook's last line, as for runtime hooks",
    );
    t.equal(f.stdout, '', 'nothing of it on stdout');
  },
);

t.test(
  'foreground pipes: stdin still reaches a process that closed its stdout and stderr, as under the reference',
  async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        c.root!.readonly = false;
      },
      ['/bin/sh', '-c', 'exec >/dev/null 2>&1; read x; echo "$x" > /got'],
    );
    const id = uniqueId('fglate');
    cleanupBoth(t, bundle, id);
    const got: Record<string, string> = {};
    for (const rt of RUNTIMES) {
      fs.rmSync(path.join(bundle.rootfs, 'got'), { force: true });
      const r = runCommand(
        [
          '/bin/sh',
          '-c',
          `(sleep 1; echo late-input) | ${rt.bin} --root ${bundle.root}-${rt.name} run -b ${bundle.dir} ${idFor(rt, id)}`,
        ],
        { timeoutMs: 30_000 },
      );
      t.equal(r.status, 0, `${rt.name}: ${r.stderr}`);
      got[rt.name] = fs.existsSync(path.join(bundle.rootfs, 'got'))
        ? fs.readFileSync(path.join(bundle.rootfs, 'got'), 'utf8')
        : '(none)';
    }
    t.same(got, { reference: 'late-input\n', tsrun: 'late-input\n' });
  },
);

t.test('a hook that closes its stdin before reading the state is no failure, as under the reference', async (t) => {
  // A state larger than a pipe holds, so the helper is still writing it when the hook closes its end;
  // no pid namespace, where the init is no pid 1 that the kernel's SIGPIPE could not kill.
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'pid');
      c.annotations = { 'org.example/large': 'x'.repeat(100_000) };
      c.hooks = { startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'exec 0<&-; sleep 0.2'] }] };
    },
    ['/bin/echo', 'main'],
  );
  const id = uniqueId('hookstdin');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%'], { timeoutMs: 30_000 });
  t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.tsrun.stderr}`);
  t.same(seen(r.tsrun), { status: 0, stdout: 'main\n' });
});
