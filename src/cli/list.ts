import { Command } from './args';
import { list } from '../lib/control';
import { TsrunError } from '../lib/errors';
import { out, storeOf, verb } from './common';

/** runc's table: Go's tabwriter with a minimum cell width of 12 and a padding of 3; the last column unpadded. */
function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(12, ...rows.map((r) => r[i].length + 3)));
  return (
    rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('')).join('\n') + '\n'
  );
}

export function listCommand(): Command {
  return new Command('list')
    .alias('ls')
    .description('list containers')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'print ids only')
    .action(
      verb(
        'list',
        function (this: Command) {
          const o = this.opts();
          const states = list(storeOf(this));
          if (o.quiet) return out(states.map((s) => s.id + '\n').join(''));
          if (o.format === 'json') return out(JSON.stringify(states) + '\n');
          if (o.format !== 'table') throw new TsrunError(`--format: must be "table" or "json", not "${o.format}"`);
          const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
          for (const s of states) rows.push([s.id, String(s.pid), s.status, s.bundle, s.created, s.owner]);
          out(table(rows));
        },
        () => undefined,
      ),
    );
}
