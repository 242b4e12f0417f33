import { Command } from './args';
import { create } from '../lib/container';
import { createOptionsOf, pullIfNeeded, storeOf, verb, withCreateOptions } from './common';

export function createCommand(): Command {
  return withCreateOptions(
    new Command('create').description('create a container, leaving its process waiting for "start"'),
  ).action(
    verb('create', function (this: Command, id: string, command: string[]) {
      const options = createOptionsOf(this, id, command); // its errors before any pull
      // Pulled first when missing; without --image create stays synchronous.
      if (options.image)
        return pullIfNeeded(this, options.image.ref).then(() => {
          create(storeOf(this), options);
        });
      create(storeOf(this), options);
    }),
  );
}
