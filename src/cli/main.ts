/**
 * tsrun's command line: runc's global flags and verbs.  Each verb lives in
 * its own small file and calls one function of the lifecycle library.
 * Only the verb being run is loaded (with what it needs): `tsrun state`
 * does not pay for the image importer or the seccomp compiler.
 */
import { Command, UsageExit } from './args';
import { configureLog, debug } from '../lib/log';
import { TsrunError } from '../lib/errors';
import { reportError, rootlessValue } from './common';

/** Each verb's file, loaded when that verb runs (all of them for help). */
const VERBS: Record<string, () => Command> = {
  create: () => (require('./create') as typeof import('./create')).createCommand(),
  start: () => (require('./start') as typeof import('./start')).startCommand(),
  run: () => (require('./run') as typeof import('./run')).runCommand(),
  state: () => (require('./state') as typeof import('./state')).stateCommand(),
  kill: () => (require('./kill') as typeof import('./kill')).killCommand(),
  delete: () => (require('./delete') as typeof import('./delete')).deleteCommand(),
  exec: () => (require('./exec') as typeof import('./exec')).execCommand(),
  list: () => (require('./list') as typeof import('./list')).listCommand(),
  ls: () => (require('./list') as typeof import('./list')).listCommand(),
  ps: () => (require('./ps') as typeof import('./ps')).psCommand(),
  pause: () => (require('./pause') as typeof import('./pause')).pauseCommand(),
  resume: () => (require('./resume') as typeof import('./resume')).resumeCommand(),
  update: () => (require('./update') as typeof import('./update')).updateCommand(),
  events: () => (require('./events') as typeof import('./events')).eventsCommand(),
  checkpoint: () => (require('./checkpoint') as typeof import('./checkpoint')).checkpointCommand(),
  restore: () => (require('./restore') as typeof import('./restore')).restoreCommand(),
  spec: () => (require('./spec') as typeof import('./spec')).specCommand(),
  features: () => (require('./features') as typeof import('./features')).featuresCommand(),
  image: () => (require('./image') as typeof import('./image')).imageCommand(),
  bundle: () => (require('./bundle') as typeof import('./bundle')).bundleCommand(),
  completion: () => (require('./completion') as typeof import('./completion')).completionCommand(),
};

/** Global flags that take a value, as separate word ("--root DIR", or "-root DIR" as Go's flag package reads it). */
const GLOBAL_WITH_VALUE = new Set(
  ['root', 'log', 'log-format', 'rootless', 'store', 'criu'].flatMap((f) => [`--${f}`, `-${f}`]),
);

/** The verb of a command line: the first word that is not a global flag or its value. */
export function verbOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') return argv[i + 1];
    if (!word.startsWith('-')) return word;
    if (GLOBAL_WITH_VALUE.has(word)) i++;
  }
  return undefined;
}

export const VERSION = '0.1.0';
/** The verb being run, for errors raised before its action takes over. */
let activeVerb: string | undefined;
export const SPEC_VERSION = '1.3.0';

/** The commit the executable was built from (scripts/compile-exe.js compiles it in). */
declare const TSRUN_COMMIT: string | undefined;

/** What runc --version prints, in its order: version, commit, spec, the language's runtime, libseccomp. */
function versionText(): string {
  let commit = typeof TSRUN_COMMIT === 'string' ? TSRUN_COMMIT : undefined;
  if (commit === undefined) {
    // The Node build runs from the checkout itself.
    const { spawnSync } = require('child_process') as typeof import('child_process');
    const { PROJECT_ROOT } = require('../lib/native') as typeof import('../lib/native');
    commit =
      spawnSync('git', ['-C', PROJECT_ROOT, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).stdout?.trim() ||
      'unknown';
  }
  let seccomp = 'unknown';
  try {
    seccomp = (require('../lib/native') as typeof import('../lib/native')).native.seccompVersion();
  } catch {
    // no addon built: the version still prints
  }
  const engine = process.versions.bun ? `bun: ${process.versions.bun}` : `node: ${process.version}`;
  return [
    `tsrun version ${VERSION}`,
    `commit: ${commit}`,
    `spec: ${SPEC_VERSION}`,
    engine,
    `libseccomp: ${seccomp}`,
  ].join('\n');
}

function program(argv: string[]): Command {
  const root = new Command('tsrun')
    .description('a runc-compatible OCI container runtime')
    .option('--root <path>', 'directory for container state (default: /run/tsrun; $XDG_RUNTIME_DIR/tsrun for a user)')
    .option('--log <path>', 'append log lines to this file')
    .option('--log-format <format>', 'text or json', 'text')
    .option('--debug', 'log the launch plan and other details')
    .option('--criu <path>', 'the criu binary checkpoint and restore use (default: criu on PATH)')
    .option('--systemd-cgroup', 'place containers in cgroups through systemd (a transient unit each)')
    .option(
      '--rootless <value>',
      'cgroups as for an unprivileged user: true, false or auto (any user but root, and root in a user namespace)',
    )
    .option(
      '--store <dir>',
      "the image store, for image, bundle and --image (default: $TSRUN_STORE, or /var/lib/tsrun; a user's: $XDG_DATA_HOME/tsrun)",
    )
    .version(versionText, '-v, --version', 'print the version')
    // Global flags come before the verb, as with runc (args.ts); verbs may
    // then reuse a name (spec --rootless is not the global --rootless).
    .hook('preAction', (thisCommand, actionCommand) => {
      activeVerb = actionCommand.name();
      const o = thisCommand.opts();
      configureLog({ path: o.log, format: o.logFormat, debug: o.debug });
      if (o.rootless !== undefined && rootlessValue(o.rootless) === undefined)
        throw new TsrunError(`--rootless: must be true, false or auto, not ${JSON.stringify(o.rootless)}`);
    });
  const verb = verbOf(argv);
  const verbs = verb && VERBS[verb] ? [verb] : Object.keys(VERBS).filter((name) => name !== 'ls');
  for (const name of verbs) root.addCommand(VERBS[name]());
  return root;
}

/** Every verb, for what is written from the definitions (completion scripts, man pages: docs.ts). */
export function fullProgram(): Command {
  return program([]);
}

/**
 * `entered`: when the entry began, before tsrun's modules loaded (the
 * executable's entry.ts passes it).  performance.now() counts from the
 * process's start, in Bun and in Node: with --debug every verb logs where
 * its time went (docs/performance.md).
 */
export async function main(argv: string[], entered?: number): Promise<void> {
  const started = performance.now();
  if (argv[0] === 'store-helper') {
    // What a user's tsrun runs in its image store's namespace (store-helper.ts); no verb of the CLI.
    process.exitCode = (require('./store-helper') as typeof import('./store-helper')).storeHelper(argv.slice(1));
    return;
  }
  try {
    await program(argv).parseAsync(argv, { from: 'user' });
    const loading =
      entered === undefined ? '' : `, ${(started - entered).toFixed(2)} ms of them loading tsrun's modules`;
    debug(
      `timing: ${activeVerb}: ${started.toFixed(2)} ms from the process's start to main${loading}, then ${(performance.now() - started).toFixed(2)} ms in the verb`,
    );
  } catch (err) {
    if (err instanceof UsageExit) {
      // help and version exit 0; usage errors have been printed already (args.ts)
      process.exitCode = err.exitCode;
      return;
    }
    process.exitCode = reportError(activeVerb ?? '', undefined, err);
  }
}
