import { Command } from './args';
import { remove } from '../lib/container';
import { storeOf, verb } from './common';

export function deleteCommand(): Command {
  return new Command('delete')
    .description('delete a stopped container (--force: kill it first)')
    .argument('<id>')
    .option('-f, --force', 'kill a running container, and ignore a missing one')
    .action(
      verb('delete', function (this: Command, id: string) {
        remove(storeOf(this), id, !!this.opts().force);
      }),
    );
}
