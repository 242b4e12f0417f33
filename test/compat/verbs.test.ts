/**
 * Issue 15: every verb and the flags engines and scripts use, compared
 * with runc 1.1.5: exit statuses, the shape of what is printed (state and
 * list JSON fields, list's table, ps), and what each flag does inside.
 * Values that differ from run to run (pids, times, ids) are replaced
 * before comparing.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, makeBundle, runCommand, tempDir, uniqueId } from '../helpers';
import { cleanupBoth, idFor, referenceInstalled, REFERENCE, RUNTIMES, under, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

type Rt = (typeof RUNTIMES)[number];

/** Each runtime's output with its own values made the same: id, pids, times, paths. */
function normal(rt: Rt, id: string, text: string, pids: number[] = []): string {
  let s = text.split(idFor(rt, id)).join('ID');
  for (const pid of pids) s = s.replace(new RegExp(`\\b${pid}\\b`, 'g'), 'PID');
  return s.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, 'TIME').replace(/\b\d\d:\d\d\b/g, 'HH:MM');
}

t.test('state, list, ps: the same fields, the same table', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const id = uniqueId('verbs');
  cleanupBoth(t, bundle, id);
  const seen: Record<string, Record<string, unknown>> = {};
  for (const rt of RUNTIMES) {
    t.equal(under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status, 0, `${rt.name}: run --detach`);
    const state = JSON.parse(under(rt, bundle, id, ['state', '%ID%']).stdout);
    const pid = state.pid as number;
    const out = (args: string[]) => {
      const r = under(rt, bundle, id, args);
      return `${r.status} ${normal(rt, id, r.stdout, [pid])}`;
    };
    seen[rt.name] = {
      stateKeys: Object.keys(state).sort(),
      // Column widths follow the longest cell (the ids differ in length): compared with runs of spaces as one.
      listTable: out(['list']).replace(/ {2,}/g, '  '),
      listJsonKeys: Object.keys(JSON.parse(under(rt, bundle, id, ['list', '--format', 'json']).stdout)[0]).sort(),
      listQuiet: out(['list', '-q']),
      // ps's C column (its CPU share since start) is the kernel's, not the runtime's: left out.  ps pads its
      // columns to the widest pid, whose digits differ when the pids cross 10000 between the two runs: runs of
      // spaces compared as one.
      ps: out(['ps', '%ID%'])
        .replace(/^(\S+ +\S+ +\S+ +)\d+ /gm, '$1C ')
        .replace(/ +/g, ' '),
      psJson: out(['ps', '--format', 'json', '%ID%']),
      psArgs: out(['ps', '%ID%', '-o', 'pid,comm']).replace(/ +/g, ' '),
      deleteRunning: under(rt, bundle, id, ['delete', '%ID%']).status,
      stateUnknown: under(rt, bundle, id, ['state', 'no-such-container']).status,
    };
  }
  for (const key of Object.keys(seen.reference))
    t.same(seen.tsrun[key], seen.reference[key], `${key}: as under the reference`);
  // runc's tabwriter: each column as wide as its longest cell plus 3, at least 12.
  const table = under(RUNTIMES[1], bundle, id, ['list']).stdout.split('\n');
  const header = table[0];
  t.equal(
    header.indexOf('PID'),
    Math.max(12, idFor(RUNTIMES[1], id).length + 3),
    'ID column: longest id + 3, at least 12',
  );
  t.equal(header.indexOf('STATUS') - header.indexOf('PID'), 12, 'PID column: 12');
});

t.test(
  'exec flags: --env, --cwd, --user, --additional-gids, --cap, --no-new-privs, --process, --pid-file',
  async (t) => {
    // With a capabilities section: runc 1.1.5's exec --cap panics on a config without one.
    const bundle = makeBundle(
      t,
      (c) => {
        const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
        c.process!.capabilities = { bounding: caps, effective: caps, permitted: caps };
      },
      ['/bin/sleep', '1000'],
    );
    const id = uniqueId('execflags');
    cleanupBoth(t, bundle, id);
    const dir = tempDir(t, 'tsrun-execflags-');
    const processFile = path.join(dir, 'process.json');
    fs.writeFileSync(
      processFile,
      JSON.stringify({
        args: ['/bin/sh', '-c', 'echo "$FROM_FILE $(id -u) $(pwd)"'],
        cwd: '/tmp',
        env: ['FROM_FILE=yes', 'PATH=/bin'],
        user: { uid: 1000, gid: 1000 },
      }),
    );
    const cases: Array<[string, string[]]> = [
      ['--env', ['--env', 'A=1', '--env', 'B=two words', '%ID%', '/bin/sh', '-c', 'echo "$A|$B"']],
      ['--cwd', ['--cwd', '/etc', '%ID%', '/bin/pwd']],
      [
        '--user uid:gid and --additional-gids',
        ['--user', '1000:1000', '--additional-gids', '5', '--additional-gids', '7', '%ID%', '/bin/id'],
      ],
      ['--cap', ['--cap', 'CAP_SYS_ADMIN', '%ID%', '/bin/sh', '-c', 'grep -E "Cap(Eff|Bnd|Inh)" /proc/self/status']],
      ['--no-new-privs', ['--no-new-privs', '%ID%', '/bin/sh', '-c', 'grep NoNewPrivs /proc/self/status']],
      ['--process', ['--process', processFile, '%ID%']],
      ['--tty without a console socket, no terminal here', ['--tty', '--detach', '%ID%', '/bin/true']],
    ];
    for (const rt of RUNTIMES)
      t.equal(
        under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status,
        0,
        `${rt.name}: run --detach`,
      );
    for (const [label, args] of cases) {
      const r = underBoth(bundle, id, ['exec', ...args]);
      t.same(
        { status: r.tsrun.status, stdout: r.tsrun.stdout },
        { status: r.reference.status, stdout: r.reference.stdout },
        `${label}: as under the reference`,
      );
    }
    // Refused by both (exec's own failure: 255); tsrun names the flag (issue 17).
    const refused: Array<[string[], RegExp]> = [
      [['--cwd', 'rel'], /--cwd: "rel" is not an absolute path/],
      [['--env', '=x'], /--env: "=x" has an empty name/],
      [['--env', 'NOEQ'], /--env: "NOEQ" is not NAME=VALUE/],
    ];
    for (const [flags, line] of refused) {
      const r = underBoth(bundle, id, ['exec', ...flags, '%ID%', '/bin/true']);
      t.same(
        { reference: r.reference.status, tsrun: r.tsrun.status },
        { reference: 255, tsrun: 255 },
        `${flags.join(' ')}: refused by both`,
      );
      t.match(r.tsrun.stderr, line, `${flags.join(' ')}: ${r.tsrun.stderr.trim()}`);
    }
    for (const rt of RUNTIMES) {
      const pidFile = path.join(dir, `exec-${rt.name}.pid`);
      const r = under(rt, bundle, id, ['exec', '--detach', '--pid-file', pidFile, '%ID%', '/bin/sleep', '1000']);
      t.equal(r.status, 0, `${rt.name}: exec --detach --pid-file`);
      t.match(fs.readFileSync(pidFile, 'utf8'), /^\d+$/, `${rt.name}: the pid file holds the pid alone, no newline`);
    }
  },
);

t.test('run and create flags: --pid-file, --no-pivot, --no-new-keyring, --preserve-fds', async (t) => {
  const dir = tempDir(t, 'tsrun-runflags-');
  const bundle = makeBundle(t, () => {}, [
    '/bin/sh',
    '-c',
    'ls /proc/self/fd | sort -n | tr "\\n" " "; echo; ls / | head -1',
  ]);
  const id = uniqueId('runflags');
  cleanupBoth(t, bundle, id);
  const outputs: Record<string, string[]> = {};
  for (const rt of RUNTIMES) {
    const extra = path.join(dir, `extra-${rt.name}`);
    fs.writeFileSync(extra, '');
    const fd = fs.openSync(extra, 'r');
    t.teardown(() => fs.closeSync(fd));
    const run = (args: string[], n: number) => {
      const r = runCommand(
        [rt.bin, '--root', `${bundle.root}-${rt.name}`, ...args, '-b', bundle.dir, `${idFor(rt, id)}-${n}`],
        { extraFds: [fd] },
      );
      return `${r.status} ${r.stdout}`;
    };
    outputs[rt.name] = [
      run(['run', '--no-new-keyring'], 1),
      run(['run', '--preserve-fds', '1'], 2),
      run(['run', '--no-pivot'], 3),
    ];
    const pidFile = path.join(dir, `create-${rt.name}.pid`);
    t.equal(
      under(rt, bundle, id, ['create', '--pid-file', pidFile, '-b', bundle.dir, '%ID%']).status,
      0,
      `${rt.name}: create --pid-file`,
    );
    t.equal(
      fs.readFileSync(pidFile, 'utf8'),
      String(JSON.parse(under(rt, bundle, id, ['state', '%ID%']).stdout).pid),
      `${rt.name}: the init's pid`,
    );
  }
  t.same(outputs.tsrun, outputs.reference, 'each flag as under the reference');
  t.match(outputs.tsrun[0], /^0 0 1 2 3 \nbin\n$/, '--no-new-keyring: runs');
  t.match(outputs.tsrun[1], /^0 0 1 2 3 4 \n/, '--preserve-fds 1: fd 3 passed on (4 is the listing itself)');
  t.match(outputs.tsrun[2], /^0 0 1 2 3 \nbin\n$/, '--no-pivot: runs, the rootfs at /');
});

t.test('features: every field runc reports, tsrun reports', async (t) => {
  const features = (bin: string) => JSON.parse(runCommand([bin, 'features']).stdout);
  const theirs = features(REFERENCE.bin);
  const ours = features(RUNTIMES[1].bin);
  for (const key of Object.keys(theirs)) t.ok(key in ours, `${key}`);
  for (const key of Object.keys(theirs.linux ?? {})) t.ok(key in ours.linux, `linux.${key}`);
  for (const hook of theirs.hooks ?? []) t.ok(ours.hooks.includes(hook), `hook ${hook}`);
  for (const ns of theirs.linux?.namespaces ?? []) t.ok(ours.linux.namespaces.includes(ns), `namespace ${ns}`);
  // acl and noacl (MS_POSIXACL) tsrun passes to the filesystem as its own options, and does not list.
  t.same(
    theirs.mountOptions.filter((o: string) => !ours.mountOptions.includes(o) && o !== 'acl' && o !== 'noacl'),
    [],
    'every other mount option runc knows, tsrun knows',
  );
});
