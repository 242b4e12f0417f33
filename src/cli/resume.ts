import { Command } from './args';
import { resume } from '../lib/control';
import { storeOf, verb } from './common';

export function resumeCommand(): Command {
  return new Command('resume')
    .description('thaw a paused container')
    .argument('<id>')
    .action(
      verb('resume', function (this: Command, id: string) {
        resume(storeOf(this), id);
      }),
    );
}
