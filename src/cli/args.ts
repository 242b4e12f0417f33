/**
 * tsrun's command-line parser: the part of commander's API the verb files
 * use (new Command(name).argument().option().action(), opts(), nested
 * commands), in one small module of our own.
 *
 * Why not commander itself: every engine call is a new tsrun process, and
 * in the compiled executable loading commander (with the node:child_process
 * it pulls in for its executable subcommands) and building its command
 * objects took about 1.5 ms of `tsrun state`'s 10 (measured against this parser), where runc's whole
 * `state` takes 5 (issue 16's profile, docs/performance.md).  What tsrun
 * needs of a parser is small and fixed: runc's global flags before the verb,
 * each verb's flags and arguments, help, and one-line errors.
 *
 * The rules, as commander's (so the command lines that worked still do):
 * - a verb's options may come before, between or after its arguments,
 *   unless the verb passes options through (exec, ps: the container's
 *   command keeps its own flags), where the first argument ends them;
 * - `--` ends options; `--name=value`, `--name value`, `-n value`,
 *   `-nvalue` and bundled short booleans (`-dt`) all work;
 * - `--no-x` sets x to false (its default is true);
 * - a parser function (value, previous) builds repeatable options;
 * - an unknown option, a missing value or argument and extra arguments
 *   are errors ("tsrun: unknown option '--foo'"), status 1.
 */
import fs = require('fs');
import { toStderr } from '../lib/log';

/** Thrown for --help, --version and usage errors: the exit status, the message already written. */
export class UsageExit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

// Commander's shapes: each verb's parser and action names its own argument
// types, which `unknown` would refuse (parameters are contravariant).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Parser = (value: string, previous: any) => unknown;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Action = (...args: any[]) => void | Promise<void>;
/** Flag values by name; each verb reads the ones it declared. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OptionValues = Record<string, any>;
type Source = 'default' | 'cli';

interface OptionSpec {
  short?: string;
  long: string;
  /** The key in opts(): camelCase of the long name, without "no-". */
  key: string;
  /** "<name>" of a flag that takes a value, undefined for a boolean. */
  value?: string;
  negate: boolean;
  description: string;
  parser?: Parser;
  defaultValue?: unknown;
  flags: string;
}

interface ArgumentSpec {
  name: string;
  required: boolean;
  variadic: boolean;
  description: string;
  defaultValue?: unknown;
}

interface Output {
  writeOut: (s: string) => void;
  writeErr: (s: string) => void;
}

/** The words Go's strconv.ParseBool takes, as runc's boolean flags take them after "=". */
const BOOLEAN_WORDS = new Map<string, boolean>([
  ...['1', 't', 'T', 'TRUE', 'true', 'True'].map((w): [string, boolean] => [w, true]),
  ...['0', 'f', 'F', 'FALSE', 'false', 'False'].map((w): [string, boolean] => [w, false]),
]);

const camelCase = (name: string): string => name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

function parseFlags(flags: string): Pick<OptionSpec, 'short' | 'long' | 'key' | 'value' | 'negate'> {
  const m = /^(?:-(\w),\s*)?--([\w-]+)(?:\s+(<.+>|\[.+\]))?$/.exec(flags.trim());
  if (!m) throw new Error(`args: bad option flags "${flags}"`);
  const negate = m[2].startsWith('no-');
  return { short: m[1], long: m[2], key: camelCase(negate ? m[2].slice(3) : m[2]), value: m[3], negate };
}

/** A command as documentation and completion see it (man pages, `tsrun completion`). */
export interface CommandInfo {
  name: string;
  aliases: string[];
  summary: string;
  usage: string;
  arguments: Array<{ name: string; required: boolean; variadic: boolean; description: string }>;
  options: Array<{
    flags: string;
    short?: string;
    long: string;
    takesValue: boolean;
    description: string;
    defaultValue?: unknown;
  }>;
  commands: CommandInfo[];
}

export class Command {
  private readonly verbName: string;
  private summary = '';
  private readonly aliases: string[] = [];
  private readonly argumentSpecs: ArgumentSpec[] = [];
  private readonly optionSpecs: OptionSpec[] = [];
  private readonly values: Record<string, unknown> = {};
  private readonly sources: Record<string, Source> = {};
  private handler?: Action;
  private passThrough = false;
  private versionText?: () => string;
  /** Where help and errors go: set here, or the parent's, or fds 1 and 2. */
  private ownOutput?: Output;
  private preAction?: (root: Command, leaf: Command) => void;
  readonly commands: Command[] = [];
  parent: Command | null = null;

  constructor(name = '') {
    this.verbName = name;
  }

  name(): string {
    return this.verbName;
  }

  description(text: string): this {
    this.summary = text;
    return this;
  }

  alias(name: string): this {
    this.aliases.push(name);
    return this;
  }

  argument(spec: string, description = '', defaultValue?: unknown): this {
    const m = /^([<[])([\w-]+)(\.\.\.)?[>\]]$/.exec(spec);
    if (!m) throw new Error(`args: bad argument "${spec}"`);
    this.argumentSpecs.push({ name: m[2], required: m[1] === '<', variadic: !!m[3], description, defaultValue });
    return this;
  }

  /** option(flags, description, default) or option(flags, description, parser, default). */
  option(flags: string, description = '', parserOrDefault?: unknown, defaultValue?: unknown): this {
    const spec: OptionSpec = { ...parseFlags(flags), flags, description };
    if (typeof parserOrDefault === 'function') {
      spec.parser = parserOrDefault as Parser;
      spec.defaultValue = defaultValue;
    } else {
      spec.defaultValue = parserOrDefault;
    }
    if (spec.negate && spec.defaultValue === undefined) spec.defaultValue = true;
    this.optionSpecs.push(spec);
    if (spec.defaultValue !== undefined) this.setValue(spec.key, spec.defaultValue, 'default');
    return this;
  }

  /** The text of -v/--version, made only when asked for (it may load the addon for libseccomp's version). */
  version(text: () => string, flags = '-v, --version', description = 'print the version'): this {
    this.versionText = text;
    return this.option(flags, description);
  }

  action(fn: Action): this {
    this.handler = fn;
    return this;
  }

  addCommand(cmd: Command): this {
    cmd.parent = this;
    this.commands.push(cmd);
    return this;
  }

  /** The first argument ends this command's options (the rest belong to a command run in the container). */
  passThroughOptions(): this {
    this.passThrough = true;
    return this;
  }

  configureOutput(output: Output): this {
    this.ownOutput = output;
    return this;
  }

  private get output(): Output {
    return this.ownOutput ?? this.parent?.output ?? { writeOut: (s) => fs.writeSync(1, s), writeErr: toStderr };
  }

  hook(event: 'preAction', fn: (root: Command, leaf: Command) => void): this {
    this.preAction = fn;
    return this;
  }

  opts(): OptionValues {
    return { ...this.values };
  }

  optsWithGlobals(): OptionValues {
    return this.parent ? { ...this.parent.optsWithGlobals(), ...this.values } : this.opts();
  }

  getOptionValueSource(key: string): Source | undefined {
    return this.sources[key];
  }

  async parseAsync(argv: string[], _how?: { from: 'user' }): Promise<void> {
    await this.dispatch(argv, this);
  }

  private setValue(key: string, value: unknown, source: Source): void {
    this.values[key] = value;
    this.sources[key] = source;
  }

  /**
   * A usage error: one line on stderr that names the verb and shows its
   * usage ("tsrun: state: missing argument <id> (usage: tsrun state
   * [options] <id>)"), status 1.
   */
  private fail(message: string): never {
    const line = this.parent
      ? `${this.usageName().slice('tsrun '.length)}: ${message} (usage: ${this.usageLine()})`
      : `${message} (see tsrun --help)`;
    this.output.writeErr(`tsrun: ${line}\n`);
    throw new UsageExit(1, line);
  }

  /** The command and everything under it, as plain data. */
  describe(): CommandInfo {
    return {
      name: this.verbName,
      aliases: [...this.aliases],
      summary: this.summary,
      usage: this.usageLine(),
      arguments: this.argumentSpecs.map(({ name, required, variadic, description }) => ({
        name,
        required,
        variadic,
        description,
      })),
      options: [
        ...this.optionSpecs.map((o) => ({
          flags: o.flags,
          short: o.short,
          long: o.long,
          takesValue: !!o.value,
          description: o.description,
          defaultValue: o.defaultValue,
        })),
        { flags: '-h, --help', short: 'h', long: 'help', takesValue: false, description: 'print this help' },
      ],
      commands: this.commands.map((c) => c.describe()),
    };
  }

  /** "tsrun state [options] <id>". */
  private usageLine(): string {
    const words = [this.usageName(), '[options]'];
    if (this.commands.length) words.push('<command>');
    for (const a of this.argumentSpecs)
      words.push(a.required ? `<${a.name}${a.variadic ? '...' : ''}>` : `[${a.name}${a.variadic ? '...' : ''}]`);
    return words.join(' ');
  }

  /** "tsrun", "tsrun image", "tsrun image import": how the user calls this command. */
  private usageName(): string {
    return this.parent ? `${this.parent.usageName()} ${this.verbName}` : 'tsrun';
  }

  private find(word: string): Command | undefined {
    return this.commands.find((c) => c.verbName === word || c.aliases.includes(word));
  }

  private async dispatch(argv: string[], root: Command): Promise<void> {
    const args: string[] = [];
    let i = 0;
    for (; i < argv.length; i++) {
      const word = argv[i];
      if (word === '--') {
        // Before the verb, "--" only ends the options: the next word is the verb, as in runc.
        if (this.commands.length) {
          const verb = argv[i + 1];
          if (verb === undefined) this.fail('a command is needed after --');
          const sub = this.find(verb);
          if (!sub) this.fail(`unknown command '${verb}'`);
          return sub.dispatch(argv.slice(i + 2), root);
        }
        args.push(...argv.slice(i + 1));
        break;
      }
      if (word.length > 1 && word.startsWith('-')) {
        i = this.takeOption(argv, i);
        continue;
      }
      if (this.commands.length) {
        // A command made of verbs (tsrun, tsrun image): the first word is the verb.
        if (word === 'help' || word === 'h') return this.helpFor(argv[i + 1]);
        const sub = this.find(word);
        if (!sub) this.fail(`unknown command '${word}'`);
        return sub.dispatch(argv.slice(i + 1), root);
      }
      args.push(word);
      if (this.passThrough) {
        args.push(...argv.slice(i + 1));
        break;
      }
    }
    if (!this.handler) {
      // A command made of verbs, given none, and no action of its own: its help, as runc prints it then.
      this.output.writeOut(this.helpText());
      throw new UsageExit(0, 'help');
    }
    const values = this.bindArguments(args);
    root.preAction?.(root, this);
    await this.handler.apply(this, [...values, this.opts(), this]);
  }

  /**
   * The option at argv[i] (and its value); the index of the last word used.
   * `-name` and `--name` are one flag, as Go's flag package (runc's
   * urfave/cli) reads them, so scripts written for runc (`-root DIR`,
   * `-detach`) work; a value comes after `=` or as the next word.  A single
   * dash with several letters that name no flag is short flags bundled
   * (`-dt`), or one short flag with its value attached (`-bDIR`).
   */
  private takeOption(argv: string[], i: number): number {
    const word = argv[i];
    const dashes = word.startsWith('--') ? 2 : 1;
    const eq = word.indexOf('=');
    const name = eq < 0 ? word.slice(dashes) : word.slice(dashes, eq);
    const inline = eq < 0 ? undefined : word.slice(eq + 1);
    if (name === 'h' || name === 'help') {
      this.output.writeOut(this.helpText());
      throw new UsageExit(0, 'help');
    }
    const spec =
      this.optionSpecs.find((o) => o.long === name) ??
      (name.length === 1 ? this.optionSpecs.find((o) => o.short === name) : undefined);
    if (spec) return this.takeValue(spec, argv, i, inline);
    if (dashes === 2 || name.length === 1) this.fail(`unknown option '${eq < 0 ? word : word.slice(0, eq)}'`);
    // A name that reads as a long flag ("-pidfd-socket", a flag of runc's
    // that tsrun lacks) is unknown, as Go's flag package says; it is not
    // "-p" with the value "idfd-socket".
    if (/^[a-z][a-z0-9]*-[a-z0-9-]*$/.test(name)) this.fail(`unknown option '${eq < 0 ? word : word.slice(0, eq)}'`);
    for (let j = 1; j < word.length; j++) {
      const short = this.optionSpecs.find((o) => o.short === word[j]);
      if (!short) this.fail(`unknown option '${word}'`);
      if (!short.value) {
        this.setFlag(short, true);
        continue;
      }
      if (j + 1 < word.length) {
        this.setOption(short, word.slice(j + 1));
        return i;
      }
      return this.takeValue(short, argv, i, undefined);
    }
    return i;
  }

  /** A flag's value: `inline` (after "="), or for a flag that takes one, the next word whatever it looks like (update --memory -1). */
  private takeValue(spec: OptionSpec, argv: string[], i: number, inline: string | undefined): number {
    if (!spec.value) {
      // Go's flag package: a boolean may be given as -flag=true or -flag=false.
      const on = inline === undefined ? true : BOOLEAN_WORDS.get(inline);
      if (on === undefined) this.fail(`option '${spec.flags}' is true or false, not "${inline}"`);
      this.setFlag(spec, on);
      return i;
    }
    if (inline !== undefined) {
      this.setOption(spec, inline);
      return i;
    }
    if (i + 1 >= argv.length) this.fail(`option '${spec.flags}' needs a value`);
    this.setOption(spec, argv[i + 1]);
    return i + 1;
  }

  /** A boolean flag given (`on`), or given as false; for --no-x, x is the opposite. */
  private setFlag(spec: OptionSpec, on: boolean): void {
    if (this.versionText !== undefined && spec.long === 'version') {
      if (!on) return;
      this.output.writeOut(`${this.versionText()}\n`);
      throw new UsageExit(0, 'version');
    }
    this.setValue(spec.key, spec.negate ? !on : on, 'cli');
  }

  private setOption(spec: OptionSpec, value: string): void {
    const previous = this.sources[spec.key] === 'cli' ? this.values[spec.key] : spec.defaultValue;
    this.setValue(spec.key, spec.parser ? spec.parser(value, previous) : value, 'cli');
  }

  /** The handler's leading parameters, one per declared argument. */
  private bindArguments(args: string[]): unknown[] {
    const values: unknown[] = [];
    let next = 0;
    for (const spec of this.argumentSpecs) {
      if (spec.variadic) {
        const rest = args.slice(next);
        next = args.length;
        if (spec.required && !rest.length) this.fail(`missing argument <${spec.name}...>`);
        values.push(rest.length ? rest : (spec.defaultValue ?? []));
        continue;
      }
      if (next < args.length) values.push(args[next++]);
      else if (spec.required) this.fail(`missing argument <${spec.name}>`);
      else values.push(spec.defaultValue);
    }
    if (next < args.length) {
      const expected = this.argumentSpecs.length;
      this.fail(`too many arguments: ${expected} expected, ${args.length} given`);
    }
    return values;
  }

  private helpFor(word: string | undefined): never {
    const sub = word ? this.find(word) : undefined;
    if (word && !sub) this.fail(`unknown command '${word}'`);
    this.output.writeOut((sub ?? this).helpText());
    throw new UsageExit(0, 'help');
  }

  /** Usage, description, arguments, options and verbs, as `--help` prints them. */
  helpText(): string {
    const lines = [`Usage: ${this.usageLine()}`, ''];
    if (this.summary) lines.push(this.summary, '');
    const section = (title: string, rows: Array<[string, string]>): void => {
      if (!rows.length) return;
      const width = Math.max(...rows.map(([left]) => left.length));
      lines.push(`${title}:`, ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`.trimEnd()), '');
    };
    section(
      'Arguments',
      this.argumentSpecs.filter((a) => a.description).map((a) => [a.name, a.description]),
    );
    const defaults = (o: OptionSpec): string =>
      o.value && o.defaultValue !== undefined && !(Array.isArray(o.defaultValue) && !o.defaultValue.length)
        ? ` (default: ${JSON.stringify(o.defaultValue)})`
        : '';
    section('Options', [
      ...this.optionSpecs.map((o): [string, string] => [o.flags, o.description + defaults(o)]),
      ['-h, --help', 'print this help'],
    ]);
    section(
      'Commands',
      this.commands.map((c) => [[c.verbName, ...c.aliases].join('|'), c.summary]),
    );
    return lines.join('\n');
  }
}
