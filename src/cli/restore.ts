import { Command } from './args';
import { restore } from '../lib/criu/restore';
import { criuCommonOf, withCriuOptions } from './checkpoint';
import { globals, rootlessCgroups, storeOf, verb } from './common';

export function restoreCommand(): Command {
  return withCriuOptions(
    new Command('restore').description('make a container again from a checkpoint, with CRIU').argument('<id>'),
  )
    .option('-b, --bundle <path>', 'bundle directory holding config.json', '.')
    .option('-d, --detach', 'return once the container is restored')
    .option('--pid-file <path>', "write the restored init's pid here")
    .option('--console-socket <path>', 'unix socket that receives the pty master (process.terminal)')
    .option('--no-subreaper', 'do not make tsrun a subreaper of the restored processes')
    .option('--no-pivot', 'accepted as create takes it (CRIU makes the root itself)')
    .option('--lsm-profile <type:label>', "restore with this LSM profile instead of the checkpoint's (CRIU 3.16+)")
    .option('--lsm-mount-context <context>', 'the SELinux mount context of the restored mounts (CRIU 3.16+)')
    .action(
      verb('restore', function (this: Command, id: string) {
        const o = this.opts();
        return restore(storeOf(this), {
          ...criuCommonOf(this),
          id,
          bundle: o.bundle as string,
          detach: !!o.detach,
          pidFile: o.pidFile as string | undefined,
          consoleSocket: o.consoleSocket as string | undefined,
          noSubreaper: o.subreaper === false,
          noPivot: o.pivot === false,
          lsmProfile: (o.lsmProfile as string | undefined) || undefined,
          lsmMountContext: (o.lsmMountContext as string | undefined) || undefined,
          systemdCgroup: !!globals(this).systemdCgroup,
          rootlessCgroups: rootlessCgroups(this),
        });
      }),
    );
}
