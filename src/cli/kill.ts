import { Command } from './args';
import { kill } from '../lib/control';
import { TsrunError } from '../lib/errors';
import { parseSignal } from '../lib/signals';
import { storeOf, verb } from './common';

export function killCommand(): Command {
  return new Command('kill')
    .description("send a signal (default SIGTERM) to a container's init")
    .argument('<id>')
    .argument('[signal]', 'name (TERM, SIGTERM) or number', 'SIGTERM')
    .option('-a, --all', 'signal every process of the container')
    .action(
      verb('kill', function (this: Command, id: string, signal: string) {
        let sig: number;
        try {
          sig = parseSignal(signal, { allowZero: true });
        } catch (err) {
          throw new TsrunError((err as Error).message);
        }
        kill(storeOf(this), id, sig, !!this.opts().all);
      }),
    );
}
