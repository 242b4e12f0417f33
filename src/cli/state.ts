import { Command } from './args';
import { state } from '../lib/control';
import { out, storeOf, verb } from './common';

export function stateCommand(): Command {
  return new Command('state')
    .description("print a container's state as JSON")
    .argument('<id>')
    .action(
      verb('state', function (this: Command, id: string) {
        out(JSON.stringify(state(storeOf(this), id), null, 2) + '\n');
      }),
    );
}
