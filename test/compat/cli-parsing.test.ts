/**
 * Issue 17: the command line read as runc's users type it, compared with
 * runc 1.1.5 line by line.  runc's urfave/cli reads flags with Go's flag
 * package: `-root DIR` is `--root DIR`, a boolean takes `=false`; help,
 * `h` and no verb print the help with status 0; a usage error is status 1;
 * `--version` prints the version, commit, spec and libseccomp lines.
 * tsrun names the verb and its usage in a usage error's one line; runc
 * prints its whole help on stdout.  An unknown verb is status 1 for tsrun
 * as every usage error, 3 for runc (docs/differences-from-runc.md,
 * "unknown-verb-status").
 */
import t from 'tap';
import { IS_ROOT, makeBundle, uniqueId } from '../helpers';
import { cleanupBoth, differsOnPurpose, referenceInstalled, RUNTIMES, under, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const statuses = (r: Record<string, { status: number | null }>) => ({
  reference: r.reference.status,
  tsrun: r.tsrun.status,
});

t.test('a lifecycle in Go-style flags: -root, -bundle, -detach, -all, -force, -format=json', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const id = uniqueId('goflags');
  cleanupBoth(t, bundle, id);
  for (const rt of RUNTIMES) {
    const root = `${bundle.root}-${rt.name}`;
    const cid = `${id}-${rt.name}`;
    const run = (args: string[]) => under(rt, bundle, id, ['-root', root, ...args]);
    t.equal(
      run(['run', '-detach', '-bundle', bundle.dir, cid]).status,
      0,
      `${rt.name}: -root R run -detach -bundle B ID`,
    );
    const state = run(['state', cid]);
    t.equal(state.status, 0, `${rt.name}: -root R state ID`);
    t.equal(JSON.parse(state.stdout).status, 'running', `${rt.name}: it runs`);
    t.match(run(['list', '-format=json']).stdout, new RegExp(`"id":"${cid}"`), `${rt.name}: list -format=json`);
    t.equal(run(['kill', '-all', cid, 'KILL']).status, 0, `${rt.name}: kill -all ID KILL`);
    t.equal(run(['delete', '-force=true', cid]).status, 0, `${rt.name}: delete -force=true ID`);
    t.equal(run(['state', cid]).status, 1, `${rt.name}: gone`);
  }
});

t.test('help: no verb, help, h, --help, -help: the help on stdout, status 0', async (t) => {
  const bundle = makeBundle(t, () => {});
  for (const args of [[], ['help'], ['h'], ['--help'], ['-help'], ['help', 'state'], ['state', '--help']]) {
    const r = underBoth(bundle, 'help', args);
    t.same(statuses(r), { reference: 0, tsrun: 0 }, `${args.join(' ') || 'no verb'}: status 0 under both`);
    t.ok(r.tsrun.stdout.length > 0, `${args.join(' ') || 'no verb'}: tsrun prints help on stdout`);
  }
});

t.test("usage errors: status 1 under both; tsrun's one line names the verb and shows its usage", async (t) => {
  const bundle = makeBundle(t, () => {});
  const cases: Array<[string[], RegExp]> = [
    [['state'], /^tsrun: state: missing argument <id> \(usage: tsrun state \[options\] <id>\)\n$/],
    [['state', 'a', 'b'], /^tsrun: state: too many arguments/],
    [['list', '--bogus'], /^tsrun: list: unknown option '--bogus'/],
    [['list', '-bogus'], /^tsrun: list: unknown option '-bogus'/],
    [['list', '-f'], /^tsrun: list: option '-f, --format <format>' needs a value/],
    [['kill'], /^tsrun: kill: missing argument <id>/],
    [['--bogus', 'list'], /^tsrun: unknown option '--bogus'/],
  ];
  for (const [args, line] of cases) {
    const r = underBoth(bundle, 'usage', args);
    t.same(statuses(r), { reference: 1, tsrun: 1 }, `${args.join(' ')}: status 1 under both`);
    t.match(r.tsrun.stderr, line, `${args.join(' ')}: ${r.tsrun.stderr.trim()}`);
  }
});

t.test('an unknown verb: runc exits 3 (urfave/cli), tsrun 1 as every usage error', async (t) => {
  differsOnPurpose(t, 'unknown-verb-status');
  const bundle = makeBundle(t, () => {});
  const r = underBoth(bundle, 'verb', ['nosuchverb']);
  t.same(statuses(r), { reference: 3, tsrun: 1 });
  t.equal(r.tsrun.stderr, "tsrun: unknown command 'nosuchverb' (see tsrun --help)\n");
});

t.test('--version and -v: version, commit, spec and libseccomp, as runc prints them', async (t) => {
  const bundle = makeBundle(t, () => {});
  for (const flag of ['--version', '-v', '-version']) {
    const r = underBoth(bundle, 'version', [flag]);
    t.same(statuses(r), { reference: 0, tsrun: 0 }, `${flag}: status 0`);
    for (const [name, out] of [
      ['runc', r.reference.stdout],
      ['tsrun', r.tsrun.stdout],
    ]) {
      const lines = out.trim().split('\n');
      t.match(lines[0], new RegExp(`^${name} version \\S+$`), `${flag}: ${name}'s first line`);
      for (const key of ['commit', 'spec', 'libseccomp'])
        t.ok(
          lines.some((l) => l.startsWith(`${key}: `)),
          `${flag}: ${name} prints ${key}:`,
        );
    }
    t.match(r.tsrun.stdout, /^libseccomp: \d+\.\d+\.\d+$/m, `${flag}: tsrun's libseccomp is the addon's`);
  }
});
