import { Command } from './args';
import { run } from '../lib/container';
import { createOptionsOf, pullIfNeeded, storeOf, verb, withCreateOptions } from './common';

export function runCommand(): Command {
  return withCreateOptions(
    new Command('run').description('create and start a container, and wait for it unless --detach'),
  )
    .option('-d, --detach', 'return once the container has started')
    .option('--keep', 'do not delete the container after it exits')
    .option('--no-subreaper', 'accepted for runc compatibility')
    .action(
      verb('run', async function (this: Command, id: string, command: string[]) {
        const o = this.opts();
        const options = createOptionsOf(this, id, command); // its errors before any pull
        if (options.image) await pullIfNeeded(this, options.image.ref);
        return run(storeOf(this), { ...options, detach: !!o.detach, keep: !!o.keep });
      }),
    );
}
