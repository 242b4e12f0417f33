import { spawnSync } from 'child_process';
import { Command } from './args';
import { pids } from '../lib/control';
import { TsrunError } from '../lib/errors';
import { out, storeOf, verb } from './common';

/** Keep ps's header and the rows whose PID column is one of `wanted`. */
export function filterPsOutput(text: string, wanted: Set<number>): string {
  const [header, ...rows] = text.split('\n').filter(Boolean);
  const column = header.trim().split(/\s+/).indexOf('PID');
  if (column < 0) throw new TsrunError('ps: its output has no PID column');
  const kept = rows.filter((row) => wanted.has(Number(row.trim().split(/\s+/)[column])));
  return [header, ...kept].join('\n') + '\n';
}

export function psCommand(): Command {
  return new Command('ps')
    .passThroughOptions()
    .description("list a container's processes (table: ps output; json: pids)")
    .argument('<id>')
    .argument('[ps-args...]', 'arguments for ps(1), default -ef')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(
      verb('ps', function (this: Command, id: string, psArgs: string[]) {
        const format = this.opts().format;
        if (format !== 'table' && format !== 'json')
          throw new TsrunError(`--format: must be "table" or "json", not "${format}"`);
        const list = pids(storeOf(this), id);
        if (format === 'json') return out(JSON.stringify(list) + '\n');
        const ps = spawnSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8' });
        if (ps.status !== 0)
          throw new TsrunError(`ps ${psArgs.join(' ')}: ${ps.stderr.trim() || `exit status ${ps.status}`}`);
        out(filterPsOutput(ps.stdout, new Set(list)));
      }),
    );
}
