import { Command } from 'commander';
import { create } from '../lib/container';
import { parseCount, storeOf, verb } from './common';

export function createCommand(): Command {
  return new Command('create')
    .description('create a container, leaving its process waiting for "start"')
    .argument('<id>')
    .option('-b, --bundle <path>', 'bundle directory holding config.json', '.')
    .option('--pid-file <path>', 'write the init pid here')
    .option('--console-socket <path>', 'unix socket that receives the pty master (process.terminal)')
    .option('--preserve-fds <n>', 'pass this many fds after stdio into the container', '0')
    .option('--no-pivot', 'use move+chroot instead of pivot_root (ramfs roots)')
    .option('--no-new-keyring', 'do not create a session keyring for the container')
    .action(verb('create', function (this: Command, id: string) {
      const o = this.opts();
      create(storeOf(this), {
        id,
        bundle: o.bundle,
        pidFile: o.pidFile,
        consoleSocket: o.consoleSocket,
        preserveFds: parseCount(o.preserveFds, '--preserve-fds'),
        noPivot: o.pivot === false,
        noNewKeyring: o.newKeyring === false,
      });
    }));
}
