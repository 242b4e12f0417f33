import { Command } from './args';
import { create } from '../lib/container';
import { createOptionsOf, storeOf, verb, withCreateOptions } from './common';

export function createCommand(): Command {
  return withCreateOptions(
    new Command('create').description('create a container, leaving its process waiting for "start"'),
  ).action(
    verb('create', function (this: Command, id: string, command: string[]) {
      create(storeOf(this), createOptionsOf(this, id, command));
    }),
  );
}
