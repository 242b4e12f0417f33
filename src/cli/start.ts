import { Command } from './args';
import { start } from '../lib/container';
import { storeOf, verb } from './common';

export function startCommand(): Command {
  return new Command('start')
    .description('start the process of a created container')
    .argument('<id>')
    .action(
      verb('start', function (this: Command, id: string) {
        start(storeOf(this), id, true);
      }),
    );
}
