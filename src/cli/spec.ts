import { Command } from './args';
import fs = require('fs');
import path = require('path');
import { describeFsError, TsrunError } from '../lib/errors';
import { isCgroup2Unified } from '../lib/cgroup';
import { defaultSpec } from '../lib/spec-default';
import { verb } from './common';

export function specCommand(): Command {
  return new Command('spec')
    .description('write a default config.json into the bundle')
    .option('-b, --bundle <path>', 'bundle directory', '.')
    .option('--rootless', 'a config for a rootless container')
    .action(
      verb(
        'spec',
        function (this: Command) {
          const o = this.opts();
          const file = path.join(o.bundle, 'config.json');
          const spec = defaultSpec({ rootless: !!o.rootless, cgroupNamespace: isCgroup2Unified() });
          try {
            fs.writeFileSync(file, JSON.stringify(spec, null, '\t') + '\n', { flag: 'wx', mode: 0o666 });
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'EEXIST')
              throw new TsrunError(`${file} already exists; remove it first`);
            throw new TsrunError(describeFsError(err, file));
          }
        },
        () => undefined,
      ),
    );
}
