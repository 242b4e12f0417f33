import { Command } from './args';
import { pause } from '../lib/control';
import { storeOf, verb } from './common';

export function pauseCommand(): Command {
  return new Command('pause')
    .description('freeze every process of a container')
    .argument('<id>')
    .action(
      verb('pause', function (this: Command, id: string) {
        pause(storeOf(this), id);
      }),
    );
}
