import { Command } from './args';
import { TsrunError } from '../lib/errors';
import { out, verb } from './common';

/** `tsrun completion bash|zsh|fish`: a completion script made from the command definitions (docs.ts). */
export function completionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script: bash, zsh or fish (source <(tsrun completion bash))')
    .argument('<shell>')
    .action(
      verb(
        'completion',
        function (this: Command, shell: string) {
          const docs = require('./docs') as typeof import('./docs');
          const root = (require('./main') as typeof import('./main')).fullProgram().describe();
          const scripts: Record<string, (root: ReturnType<Command['describe']>) => string> = {
            bash: docs.bashCompletion,
            zsh: docs.zshCompletion,
            fish: docs.fishCompletion,
          };
          if (!scripts[shell]) throw new TsrunError(`"${shell}": bash, zsh or fish`);
          out(scripts[shell](root));
        },
        () => undefined,
      ),
    );
}
