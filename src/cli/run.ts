import { Command } from 'commander';
import { run } from '../lib/container';
import { parseCount, storeOf, verb } from './common';

export function runCommand(): Command {
  return new Command('run')
    .description('create and start a container, and wait for it unless --detach')
    .argument('<id>')
    .option('-b, --bundle <path>', 'bundle directory holding config.json', '.')
    .option('--pid-file <path>', 'write the init pid here')
    .option('--console-socket <path>', 'unix socket that receives the pty master (process.terminal)')
    .option('--preserve-fds <n>', 'pass this many fds after stdio into the container', '0')
    .option('--no-pivot', 'use move+chroot instead of pivot_root (ramfs roots)')
    .option('--no-new-keyring', 'do not create a session keyring for the container')
    .option('-d, --detach', 'return once the container has started')
    .option('--keep', 'do not delete the container after it exits')
    .option('--no-subreaper', 'accepted for runc compatibility')
    .action(verb('run', async function (this: Command, id: string) {
      const o = this.opts();
      return run(storeOf(this), {
        id,
        bundle: o.bundle,
        pidFile: o.pidFile,
        consoleSocket: o.consoleSocket,
        preserveFds: parseCount(o.preserveFds, '--preserve-fds'),
        noPivot: o.pivot === false,
        noNewKeyring: o.newKeyring === false,
        detach: !!o.detach,
        keep: !!o.keep,
      });
    }));
}
