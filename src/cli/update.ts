import { type LinuxResources } from '../lib/cgroup/resources';
import { Command } from './args';
import fs = require('fs');
import { checkResources, ConfigError } from '../lib/config';
import { update } from '../lib/control';
import { describeFsError, TsrunError } from '../lib/errors';
import { storeOf, verb } from './common';

/** "64m", "1G", "512k", "1048576": bytes, binary units like runc's flags; -1 means unlimited. */
export function parseBytes(value: string, flag: string): number {
  const m = value.trim().match(/^(-1|\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i);
  if (!m) throw new TsrunError(`${flag}: "${value}" is not a size (e.g. 512m, 1g)`);
  if (m[1] === '-1') return -1;
  const power = ' kmgtp'.indexOf(m[2].toLowerCase() || ' ');
  return Math.round(Number(m[1]) * 1024 ** power);
}

function parseInteger(value: string, flag: string): number {
  if (!/^-?\d+$/.test(value)) throw new TsrunError(`${flag}: "${value}" is not an integer`);
  return Number(value);
}

type Resources = LinuxResources;

/** runc update's flags, each to its linux.resources field. */
const FLAGS: Array<[flag: string, description: string, apply: (r: Resources, v: string) => void]> = [
  ['--memory <bytes>', 'memory limit (e.g. 512m)', (r, v) => ((r.memory ??= {}).limit = parseBytes(v, '--memory'))],
  [
    '--memory-reservation <bytes>',
    'memory soft limit',
    (r, v) => ((r.memory ??= {}).reservation = parseBytes(v, '--memory-reservation')),
  ],
  [
    '--memory-swap <bytes>',
    'memory plus swap limit',
    (r, v) => ((r.memory ??= {}).swap = parseBytes(v, '--memory-swap')),
  ],
  [
    '--kernel-memory <bytes>',
    'kernel memory limit (deprecated)',
    (r, v) => ((r.memory ??= {}).kernel = parseBytes(v, '--kernel-memory')),
  ],
  [
    '--kernel-memory-tcp <bytes>',
    'kernel TCP memory limit (deprecated)',
    (r, v) => ((r.memory ??= {}).kernelTCP = parseBytes(v, '--kernel-memory-tcp')),
  ],
  [
    '--cpu-share <n>',
    "CPU shares (runc's spelling)",
    (r, v) => ((r.cpu ??= {}).shares = parseInteger(v, '--cpu-share')),
  ],
  ['--cpu-shares <n>', 'CPU shares', (r, v) => ((r.cpu ??= {}).shares = parseInteger(v, '--cpu-shares'))],
  ['--cpu-quota <us>', 'CFS quota', (r, v) => ((r.cpu ??= {}).quota = parseInteger(v, '--cpu-quota'))],
  ['--cpu-period <us>', 'CFS period', (r, v) => ((r.cpu ??= {}).period = parseInteger(v, '--cpu-period'))],
  ['--cpu-burst <us>', 'CFS burst', (r, v) => ((r.cpu ??= {}).burst = parseInteger(v, '--cpu-burst'))],
  [
    '--cpu-rt-period <us>',
    'realtime period',
    (r, v) => ((r.cpu ??= {}).realtimePeriod = parseInteger(v, '--cpu-rt-period')),
  ],
  [
    '--cpu-rt-runtime <us>',
    'realtime runtime',
    (r, v) => ((r.cpu ??= {}).realtimeRuntime = parseInteger(v, '--cpu-rt-runtime')),
  ],
  ['--cpu-idle <0|1>', 'SCHED_IDLE for the cgroup', (r, v) => ((r.cpu ??= {}).idle = parseInteger(v, '--cpu-idle'))],
  ['--cpuset-cpus <list>', 'CPUs allowed', (r, v) => ((r.cpu ??= {}).cpus = v)],
  ['--cpuset-mems <list>', 'memory nodes allowed', (r, v) => ((r.cpu ??= {}).mems = v)],
  [
    '--pids-limit <n>',
    'maximum number of processes',
    (r, v) => ((r.pids ??= {}).limit = parseInteger(v, '--pids-limit')),
  ],
  [
    '--blkio-weight <n>',
    'block IO weight (10-1000)',
    (r, v) => ((r.blockIO ??= {}).weight = parseInteger(v, '--blkio-weight')),
  ],
];

const camel = (flag: string): string =>
  flag
    .replace(/^--/, '')
    .split(' ')[0]
    .replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

export function updateCommand(): Command {
  const cmd = new Command('update')
    .description("change a container's resource limits")
    .argument('<id>')
    .option('-r, --resources <file>', 'linux.resources JSON, as runc takes it ("-" for stdin)')
    .option('--l3-cache-schema <schema>', 'Intel RDT L3 cache schema')
    .option('--mem-bw-schema <schema>', 'Intel RDT memory bandwidth schema');
  for (const [flag, description] of FLAGS) cmd.option(flag, description);
  return cmd.action(
    verb('update', function (this: Command, id: string) {
      const o = this.opts();
      if ((o.l3CacheSchema || o.memBwSchema) && !fs.existsSync('/sys/fs/resctrl/schemata'))
        throw new TsrunError(
          `${o.l3CacheSchema ? '--l3-cache-schema' : '--mem-bw-schema'}: Intel RDT needs resctrl, which this host does not have mounted`,
        );
      if (o.l3CacheSchema || o.memBwSchema)
        throw new TsrunError('--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported by tsrun yet');
      let resources: Resources = {};
      if (o.resources) {
        let text: string;
        try {
          text = fs.readFileSync(o.resources === '-' ? 0 : o.resources, 'utf8');
        } catch (err) {
          throw new TsrunError(describeFsError(err, `--resources ${o.resources}`));
        }
        try {
          resources = JSON.parse(text);
        } catch (err) {
          throw new TsrunError(`--resources ${o.resources}: invalid JSON: ${(err as Error).message}`);
        }
        if (typeof resources !== 'object' || resources === null || Array.isArray(resources))
          throw new TsrunError(`--resources ${o.resources}: must be a JSON object (linux.resources)`);
      }
      for (const [flag, , apply] of FLAGS) {
        const value = o[camel(flag)];
        if (value !== undefined) apply(resources, value);
      }
      // runc's fix-up: lifting the memory limit lifts memory+swap too, unless
      // that is given (memsw may never be below the limit, so -1 alone fails).
      if (resources.memory?.limit === -1 && resources.memory.swap === undefined) resources.memory.swap = -1;
      try {
        checkResources(resources);
      } catch (err) {
        if (err instanceof ConfigError)
          throw new TsrunError(o.resources ? `--resources ${o.resources}: ${err.message}` : err.message);
        throw err;
      }
      update(storeOf(this), id, resources);
    }),
  );
}
