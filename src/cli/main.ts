/**
 * tsrun's command line: runc's global flags and verbs.  Each verb lives in
 * its own small file and calls one function of the lifecycle library.
 */
import { Command, CommanderError } from 'commander';
import * as fs from 'fs';
import { configureLog } from '../lib/log';
import { bundleCommand } from './bundle';
import { createCommand } from './create';
import { deleteCommand } from './delete';
import { eventsCommand } from './events';
import { execCommand } from './exec';
import { featuresCommand } from './features';
import { imageCommand } from './image';
import { killCommand } from './kill';
import { listCommand } from './list';
import { pauseCommand } from './pause';
import { psCommand } from './ps';
import { resumeCommand } from './resume';
import { runCommand } from './run';
import { specCommand } from './spec';
import { startCommand } from './start';
import { stateCommand } from './state';
import { updateCommand } from './update';
import { reportError } from './common';
import { TsrunError } from '../lib/errors';

export const VERSION = '0.1.0';
/** The verb being run, for errors raised before its action takes over. */
let activeVerb: string | undefined;
export const SPEC_VERSION = '1.3.0';

function program(): Command {
  const root = new Command('tsrun')
    .description('a runc-compatible OCI container runtime')
    .option('--root <path>', 'directory for container state', '/run/tsrun')
    .option('--log <path>', 'append log lines to this file')
    .option('--log-format <format>', 'text or json', 'text')
    .option('--debug', 'log the launch plan and other details')
    .option('--systemd-cgroup', 'use the systemd cgroup manager (not supported yet)')
    .option('--rootless <value>', 'accepted for runc compatibility (true|false|auto)')
    .version(`tsrun version ${VERSION}\nspec: ${SPEC_VERSION}`, '-v, --version', 'print the version')
    .configureOutput({
      writeOut: (s) => fs.writeSync(1, s),
      writeErr: (s) => fs.writeSync(2, s.replace(/^error: /, 'tsrun: ')),
    })
    .exitOverride()
    // Global flags come before the verb, as with runc; verbs may then reuse
    // a name (spec --rootless is not the global --rootless).
    .enablePositionalOptions()
    .hook('preAction', (thisCommand, actionCommand) => {
      activeVerb = actionCommand.name();
      const o = thisCommand.opts();
      configureLog({ path: o.log, format: o.logFormat, debug: o.debug });
      if (o.systemdCgroup) throw new TsrunError('--systemd-cgroup: the systemd cgroup manager is not supported yet');
    });
  for (const cmd of [createCommand(), startCommand(), runCommand(), stateCommand(), killCommand(),
    deleteCommand(), execCommand(), listCommand(), psCommand(), pauseCommand(), resumeCommand(), updateCommand(), eventsCommand(), specCommand(), featuresCommand(), imageCommand(), bundleCommand()]) {
    root.addCommand(cmd.exitOverride().configureOutput({
      writeOut: (s) => fs.writeSync(1, s),
      writeErr: (s) => fs.writeSync(2, s.replace(/^error: /, 'tsrun: ')),
    }));
  }
  return root;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors have been printed already
      process.exitCode = err.exitCode;
      return;
    }
    process.exitCode = reportError(activeVerb ?? '', undefined, err);
  }
}
