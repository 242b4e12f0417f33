import path = require('path');
import { Command } from './args';
import { checkpoint } from '../lib/criu/checkpoint';
import { TsrunError } from '../lib/errors';
import { collect, globals, storeOf, verb } from './common';

/** The flags checkpoint and restore share, as runc names them. */
export function withCriuOptions(cmd: Command): Command {
  return cmd
    .option('--image-path <path>', 'path for the criu image files (default: ./checkpoint)')
    .option('--work-path <path>', "path for criu's work files and logs (default: the image path)")
    .option('--tcp-established', 'allow open tcp connections')
    .option('--ext-unix-sk', 'allow external unix sockets')
    .option('--shell-job', 'allow shell jobs')
    .option('--file-locks', 'handle file locks, for safety')
    .option('--manage-cgroups-mode <mode>', 'cgroups mode: soft, full, strict or ignore (default: soft)')
    .option('--empty-ns <namespace>', 'make a namespace, but do not restore its properties (network)', collect, [])
    .option('--auto-dedup', 'enable auto deduplication of memory images')
    .option('--lazy-pages', 'use userfaultfd to restore memory pages lazily');
}

export function criuCommonOf(cmd: Command): import('../lib/criu/checkpoint').CriuCommonOptions {
  const o = cmd.opts();
  return {
    imagePath: (o.imagePath as string | undefined) || path.join(process.cwd(), 'checkpoint'),
    workPath: (o.workPath as string | undefined) || undefined,
    tcpEstablished: !!o.tcpEstablished,
    extUnixSk: !!o.extUnixSk,
    shellJob: !!o.shellJob,
    fileLocks: !!o.fileLocks,
    manageCgroupsMode: o.manageCgroupsMode as string | undefined,
    emptyNs: o.emptyNs as string[],
    autoDedup: !!o.autoDedup,
    lazyPages: !!o.lazyPages,
    criu: globals(cmd).criu,
  };
}

export function checkpointCommand(): Command {
  return withCriuOptions(
    new Command('checkpoint').description("save a running container's processes with CRIU").argument('<id>'),
  )
    .option('--parent-path <path>', 'path of the previous criu image files (a pre-dump), relative to --image-path')
    .option('--leave-running', 'leave the container running after the checkpoint')
    .option('--tcp-skip-in-flight', 'skip in-flight tcp connections')
    .option('--link-remap', 'allow linking unlinked files back when possible')
    .option('--pre-dump', "dump the memory only, and leave the container running (before a final dump's --parent-path)")
    .option('--status-fd <fd>', 'criu writes \\0 to this fd once lazy pages are ready', '-1')
    .option('--page-server <address:port>', 'send the pages to this page server')
    .action(
      verb('checkpoint', function (this: Command, id: string) {
        const o = this.opts();
        if (!/^-?\d+$/.test(o.statusFd as string))
          throw new TsrunError(`--status-fd: "${o.statusFd}" is not an integer`);
        checkpoint(storeOf(this), id, {
          ...criuCommonOf(this),
          parentPath: (o.parentPath as string | undefined) || undefined,
          leaveRunning: !!o.leaveRunning,
          tcpSkipInFlight: !!o.tcpSkipInFlight,
          linkRemap: !!o.linkRemap,
          preDump: !!o.preDump,
          statusFd: Number(o.statusFd),
          pageServer: (o.pageServer as string | undefined) || undefined,
        });
      }),
    );
}
