import { Command } from './args';
import { cgroupManagerFrom } from '../lib/cgroup';
import { statsJson } from '../lib/cgroup/stats';
import { TsrunError } from '../lib/errors';
import { type StateStore } from '../lib/state';
import { containerStatus } from '../lib/status';
import { out, storeOf, verb } from './common';

/** "5s", "500ms", "1m", or plain seconds: runc's --interval. */
export function parseInterval(value: string): number {
  const m = value.match(/^(\d+(?:\.\d+)?)(ms|s|m)?$/);
  if (!m || Number(m[1]) <= 0)
    throw new TsrunError(`--interval: "${value}" is not a positive duration (e.g. 5s, 500ms)`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
}

const OOM_POLL_MS = 100;

/**
 * Stats every interval, and an "oom" event whenever the kernel's OOM
 * killer strikes in the container, until the container stops.
 */
async function follow(store: StateStore, id: string, intervalMs: number): Promise<void> {
  const cgroup = cgroupManagerFrom(store.load(id).cgroup);
  let ooms = cgroup.oomKills();
  let nextStats = Date.now();
  while (store.exists(id) && containerStatus(store, store.load(id)) !== 'stopped') {
    const kills = cgroup.oomKills();
    if (kills > ooms) out(JSON.stringify({ type: 'oom', id }) + '\n');
    ooms = kills;
    if (Date.now() >= nextStats) {
      out(statsJson({ type: 'stats', id, data: cgroup.stats() }) + '\n');
      nextStats += intervalMs;
    }
    await new Promise((r) => setTimeout(r, OOM_POLL_MS));
  }
  // An OOM kill that ended the container is still news.
  if (cgroup.oomKills() > ooms) out(JSON.stringify({ type: 'oom', id }) + '\n');
}

export function eventsCommand(): Command {
  return new Command('events')
    .description("print a container's resource stats and OOM events as JSON lines")
    .argument('<id>')
    .option('--stats', 'print the stats once and exit')
    .option('--interval <duration>', 'time between stats', '5s')
    .action(
      verb('events', async function (this: Command, id: string) {
        const o = this.opts();
        const store = storeOf(this);
        const intervalMs = parseInterval(o.interval);
        if (o.stats) {
          const record = store.load(id);
          const cgroup = cgroupManagerFrom(record.cgroup);
          if (containerStatus(store, record) === 'stopped') throw new TsrunError(`container "${id}" is not running`);
          return out(statsJson({ type: 'stats', id, data: cgroup.stats() }) + '\n');
        }
        await follow(store, id, intervalMs);
      }),
    );
}
