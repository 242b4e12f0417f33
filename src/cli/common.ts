/**
 * What every verb shares: the global flags, the state store they point at,
 * output that never touches process.stdout (Node would make an inherited
 * pipe non-blocking under the container), and the one-line error report.
 */
import { Command } from 'commander';
import * as fs from 'fs';
import { CreateOptions } from '../lib/container';
import { TsrunError } from '../lib/errors';
import { logError } from '../lib/log';
import { StateStore } from '../lib/state';

export interface GlobalOptions {
  root: string;
  log?: string;
  logFormat?: string;
  debug?: boolean;
  systemdCgroup?: boolean;
  rootless?: string;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function storeOf(cmd: Command): StateStore {
  return new StateStore(globals(cmd).root);
}

export function out(text: string): void {
  fs.writeSync(1, text);
}

/** "tsrun: create c1: <reason>" on stderr and in the log; the exit status is non-zero. */
export function reportError(verb: string, id: string | undefined, err: unknown): number {
  const reason = err instanceof Error ? err.message : String(err);
  // runc's shape: "tsrun: create c1: <reason>".
  const where = [verb, id].filter(Boolean).join(' ');
  const line = (where ? `${where}: ${reason}` : reason).replace(/\s*\n\s*/g, ' ');
  logError(line);
  fs.writeSync(2, `tsrun: ${line}\n`);
  if (!(err instanceof TsrunError) && process.env.TSRUN_DEBUG_STACK && err instanceof Error) fs.writeSync(2, `${err.stack}\n`);
  return err instanceof TsrunError ? err.exitCode : 1;
}

/** Wrap a verb's body: errors become one line and the exit code; a number result is the exit code. */
export function verb<A extends unknown[]>(
  name: string,
  body: (...args: A) => void | number | Promise<void | number>,
  idOf: (...args: A) => string | undefined = (...args) => (typeof args[0] === 'string' ? args[0] : undefined),
): (...args: A) => Promise<void> {
  // A plain function, so commander's `this` (the command) reaches the body.
  return async function (this: unknown, ...args: A) {
    try {
      const code = await body.apply(this, args);
      process.exitCode = typeof code === 'number' ? code : 0;
    } catch (err) {
      process.exitCode = reportError(name, idOf(...args), err);
    }
  };
}

export function parseCount(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new TsrunError(`${flag}: "${value}" is not a non-negative integer`);
  return Number(value);
}

/** The flags create and run share, as runc has them. */
export function withCreateOptions(cmd: Command): Command {
  return cmd
    .argument('<id>')
    .option('-b, --bundle <path>', 'bundle directory holding config.json', '.')
    .option('--pid-file <path>', 'write the init pid here')
    .option('--console-socket <path>', 'unix socket that receives the pty master (process.terminal)')
    .option('--preserve-fds <n>', 'pass this many fds after stdio into the container', '0')
    .option('--no-pivot', 'use move+chroot instead of pivot_root (ramfs roots)')
    .option('--no-new-keyring', 'do not create a session keyring for the container');
}

export function createOptionsOf(id: string, o: Record<string, unknown>): CreateOptions {
  return {
    id,
    bundle: o.bundle as string,
    pidFile: o.pidFile as string | undefined,
    consoleSocket: o.consoleSocket as string | undefined,
    preserveFds: parseCount(o.preserveFds as string, '--preserve-fds'),
    noPivot: o.pivot === false,
    noNewKeyring: o.newKeyring === false,
  };
}
