/**
 * src/cli/args.ts, tsrun's command-line parser, without a process: what each
 * command line gives a verb's action, and the usage errors.  The rules are
 * commander's (tsrun used it until issue 16), so command lines that worked
 * before still do.
 */
import t from 'tap';
import { Command, UsageExit } from '../../src/cli/args';

interface Call {
  verb: string;
  args: unknown[];
  opts: Record<string, unknown>;
  globals: Record<string, unknown>;
  sources: Record<string, string | undefined>;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** A small tsrun: global --root/--log/--debug, and verbs shaped like the real ones. */
function program(): { root: Command; calls: Call[]; out: string[]; err: string[]; hooks: string[] } {
  const calls: Call[] = [];
  const out: string[] = [];
  const err: string[] = [];
  const hooks: string[] = [];
  const output = { writeOut: (s: string) => void out.push(s), writeErr: (s: string) => void err.push(s) };
  const record = (verb: string) =>
    function (this: Command, ...params: unknown[]) {
      calls.push({
        verb,
        args: params.slice(0, -2),
        opts: this.opts(),
        globals: this.optsWithGlobals(),
        sources: { bundle: this.getOptionValueSource('bundle'), env: this.getOptionValueSource('env') },
      });
    };
  const root = new Command('tsrun')
    .option('--root <path>', 'state', '/run/tsrun')
    .option('--log <path>', 'log')
    .option('--debug', 'debug')
    .version(() => 'tsrun version 9', '-v, --version')
    .configureOutput(output)
    .hook('preAction', (_root, leaf) => void hooks.push(leaf.name()));
  const verbs = [
    new Command('state').argument('<id>').action(record('state')),
    new Command('kill')
      .argument('<id>')
      .argument('[signal]', 'signal', 'SIGTERM')
      .option('-a, --all', 'all')
      .action(record('kill')),
    new Command('list')
      .alias('ls')
      .option('-f, --format <format>', 'format', 'table')
      .option('-q, --quiet', 'quiet')
      .action(record('list')),
    new Command('create')
      .argument('<id>')
      .argument('[command...]', 'command')
      .option('-b, --bundle <path>', 'bundle', '.')
      .option('-e, --env <kv>', 'env', collect, [])
      .option('-t, --tty', 'tty')
      .option('-d, --detach', 'detach')
      .option('--no-pivot', 'no pivot')
      .option('--no-new-keyring', 'no keyring')
      .action(record('create')),
    new Command('exec')
      .argument('<id>')
      .argument('[command...]', 'command')
      .passThroughOptions()
      .option('-p, --process <file>', 'process')
      .option('-t, --tty', 'tty')
      .option('-c, --cap <cap>', 'cap', collect, [])
      .action(record('exec')),
    new Command('update').argument('<id>').option('--memory <bytes>', 'memory').action(record('update')),
    new Command('spec').option('--rootless', 'rootless').action(record('spec')),
  ];
  const image = new Command('image').action(() => {
    throw new Error('a subcommand is needed');
  });
  image.addCommand(
    new Command('rm')
      .argument('<ref...>')
      .option('--store <dir>', 'store', '/var/lib/tsrun')
      .action(record('image rm')),
  );
  for (const v of [...verbs, image]) root.addCommand(v.configureOutput(output));
  return { root, calls, out, err, hooks };
}

async function parse(argv: string[]): Promise<ReturnType<typeof program> & { exit?: UsageExit; error?: Error }> {
  const p = program();
  try {
    await p.root.parseAsync(argv, { from: 'user' });
    return p;
  } catch (e) {
    if (e instanceof UsageExit) return { ...p, exit: e };
    return { ...p, error: e as Error };
  }
}

t.test("global flags before the verb, the verb's arguments and defaults", async (t) => {
  const r = await parse(['--root', '/tmp/s', '--debug', 'state', 'c1']);
  t.same(r.calls, [
    {
      verb: 'state',
      args: ['c1'],
      opts: {},
      globals: { root: '/tmp/s', debug: true },
      sources: { bundle: undefined, env: undefined },
    },
  ]);
  t.same(r.hooks, ['state'], 'preAction runs with the verb');
  const k = await parse(['kill', 'c1']);
  t.same(k.calls[0].args, ['c1', 'SIGTERM'], 'an optional argument takes its default');
  t.same(k.calls[0].globals, { root: '/run/tsrun' }, 'the global default');
  const k9 = await parse(['--root=/r', 'kill', '--all', 'c1', '9']);
  t.same([k9.calls[0].args, k9.calls[0].opts.all, k9.calls[0].globals.root], [['c1', '9'], true, '/r']);
});

t.test("options anywhere among a verb's arguments, in every spelling", async (t) => {
  const r = await parse(['create', 'c1', '-b', '/b', '--env=A=1', '-eB=2', '--env', 'C=3', '-td', '--no-pivot']);
  const c = r.calls[0];
  t.same(c.args, ['c1', []]);
  t.same(c.opts, { bundle: '/b', env: ['A=1', 'B=2', 'C=3'], tty: true, detach: true, pivot: false, newKeyring: true });
  t.same(c.sources, { bundle: 'cli', env: 'cli' });
  const d = await parse(['create', 'c2']);
  t.same(d.calls[0].opts, { bundle: '.', env: [], pivot: true, newKeyring: true }, 'defaults, --no-x defaults to true');
  t.same(d.calls[0].sources, { bundle: 'default', env: 'default' });
  const l = await parse(['ls', '-f', 'json', '-q']);
  t.same([l.calls[0].verb, l.calls[0].opts], ['list', { format: 'json', quiet: true }], 'an alias');
});

t.test('a value that looks like a flag is still the value', async (t) => {
  t.same((await parse(['update', '--memory', '-1', 'c1'])).calls[0].opts, { memory: '-1' });
  t.same((await parse(['exec', '-p', '-', 'c1'])).calls[0].opts.process, '-', '"-" (stdin) as a value');
});

t.test("-- and pass-through: the container's command keeps its flags", async (t) => {
  const e = await parse(['exec', '-t', 'c1', 'sh', '-c', 'echo -t']);
  t.same([e.calls[0].args, e.calls[0].opts.tty], [['c1', ['sh', '-c', 'echo -t']], true]);
  const c = await parse(['create', 'c1', '--', 'sh', '-c', 'x']);
  t.same(c.calls[0].args, ['c1', ['sh', '-c', 'x']]);
  const s = await parse(['spec', '--rootless']);
  t.same(
    [s.calls[0].opts, s.calls[0].globals.root],
    [{ rootless: true }, '/run/tsrun'],
    "a verb may reuse a global flag's name",
  );
});

t.test('nested commands', async (t) => {
  const r = await parse(['image', 'rm', '--store', '/s', 'a', 'b']);
  t.same([r.calls[0].verb, r.calls[0].args, r.calls[0].opts], ['image rm', [['a', 'b']], { store: '/s' }]);
  const none = await parse(['image']);
  t.match(none.error?.message, /a subcommand is needed/, "the command's own action, when no subcommand is given");
});

t.test('usage errors: one line, status 1, no action', async (t) => {
  // Each names the verb and shows its usage, on one line.
  const cases: Array<[string[], string]> = [
    [['state'], 'state: missing argument <id> (usage: tsrun state [options] <id>)'],
    [['state', 'a', 'b'], 'state: too many arguments: 1 expected, 2 given (usage: tsrun state [options] <id>)'],
    [['list', '--bogus'], "list: unknown option '--bogus' (usage: tsrun list [options])"],
    [['list', '-x'], "list: unknown option '-x' (usage: tsrun list [options])"],
    [['list', '-qz'], "list: unknown option '-qz' (usage: tsrun list [options])"],
    [['list', '--format'], "list: option '-f, --format <format>' needs a value (usage: tsrun list [options])"],
    [
      ['kill', '--all=yes', 'c1'],
      'kill: option \'-a, --all\' is true or false, not "yes" (usage: tsrun kill [options] <id> [signal])',
    ],
    [['nosuchverb'], "unknown command 'nosuchverb' (see tsrun --help)"],
    [['--bogus', 'list'], "unknown option '--bogus' (see tsrun --help)"],
    [['state', '--root', '/x', 'c1'], "state: unknown option '--root' (usage: tsrun state [options] <id>)"],
    [['image', 'rm'], 'image rm: missing argument <ref...> (usage: tsrun image rm [options] <ref...>)'],
    [['image', 'pull', 'x'], "image: unknown command 'pull' (usage: tsrun image [options] <command>)"],
  ];
  for (const [argv, message] of cases) {
    const r = await parse(argv);
    t.equal(r.exit?.exitCode, 1, argv.join(' '));
    t.same(r.err, [`tsrun: ${message}\n`], argv.join(' '));
    t.same(r.calls, [], `${argv.join(' ')}: nothing ran`);
  }
});

t.test('help and version: stdout, status 0', async (t) => {
  const h = await parse(['--help']);
  t.equal(h.exit?.exitCode, 0);
  t.match(
    h.out.join(''),
    /^Usage: tsrun \[options\] <command>\n[\s\S]*--root <path> +state \(default: "\/run\/tsrun"\)[\s\S]*list\|ls/,
  );
  const vh = await parse(['kill', '-h']);
  t.match(vh.out.join(''), /^Usage: tsrun kill \[options\] <id> \[signal\]\n[\s\S]*-a, --all/);
  const help = await parse(['help', 'state']);
  t.match(help.out.join(''), /^Usage: tsrun state \[options\] <id>/);
  const v = await parse(['-v']);
  t.same([v.exit?.exitCode, v.out], [0, ['tsrun version 9\n']]);
  t.same((await parse(['-version'])).out, ['tsrun version 9\n']);
  // As runc: no verb, "help" and "h" print the help on stdout, status 0.
  for (const argv of [[], ['help'], ['h'], ['-help']]) {
    const r = await parse(argv);
    t.equal(r.exit?.exitCode, 0, `${argv.join(' ') || 'no verb'}: status 0`);
    t.match(r.out.join(''), /^Usage: tsrun \[options\] <command>/, `${argv.join(' ') || 'no verb'}: the help`);
  }
});

t.test('-- before the verb ends the global options; the next word is the verb', async (t) => {
  const r = await parse(['--root', '/d', '--', 'state', 'c1']);
  t.same([r.calls[0].verb, r.calls[0].args, r.calls[0].globals.root], ['state', ['c1'], '/d']);
  const bad = await parse(['--', 'nosuch']);
  t.same([bad.exit?.exitCode, bad.calls], [1, []]);
});

t.test(
  'a single-dash word that reads as a long flag tsrun lacks is unknown, not a short flag with a value',
  async (t) => {
    const r = await parse(['exec', '-pidfd-socket', '/tmp/s', 'c1', 'true']);
    t.same(r.err, ["tsrun: exec: unknown option '-pidfd-socket' (usage: tsrun exec [options] <id> [command...])\n"]);
    t.same(r.calls, []);
  },
);

t.test('Go-style flags, as runc (urfave/cli) reads them: -name, -name=value, -bool=false', async (t) => {
  const r = await parse(['-root', '/g', '-debug', 'create', '-bundle', '/b', '-detach', '-env=A=1', '-e=B=2', 'c1']);
  t.same([r.calls[0].globals.root, r.calls[0].globals.debug], ['/g', true], 'global -root DIR and -debug');
  t.same(
    [r.calls[0].opts.bundle, r.calls[0].opts.detach, r.calls[0].opts.env],
    ['/b', true, ['A=1', 'B=2']],
    '-bundle DIR, -detach, -env=V, -e=V',
  );
  const b = await parse(['--root=/h', 'create', '--detach=false', '-tty=true', '--no-pivot=false', 'c2']);
  t.same(
    [b.calls[0].globals.root, b.calls[0].opts.detach, b.calls[0].opts.tty, b.calls[0].opts.pivot],
    ['/h', false, true, true],
    'booleans with =false and =true',
  );
  const k = await parse(['kill', '-all', 'c1', 'KILL']);
  t.same([k.calls[0].opts.all, k.calls[0].args], [true, ['c1', 'KILL']]);
  const bundled = await parse(['create', '-td', '-b/x', 'c3']);
  t.same(
    [bundled.calls[0].opts.tty, bundled.calls[0].opts.detach, bundled.calls[0].opts.bundle],
    [true, true, '/x'],
    'short flags bundled or with a value attached, where no long flag has the name',
  );
});
