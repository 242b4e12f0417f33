/**
 * tsrun against runc, side by side on the same bundle: `run` of /bin/true,
 * and create + start + delete.  Runs are paired (each round times both
 * runtimes, alternating which goes first) and the report gives medians and
 * the tsrun/runc ratio, so machine noise affects both sides alike.
 *
 *   node dist/bench/lifecycle.js [--rounds N] [--runc PATH]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TSRUN } from '../test/helpers';
import { arg, benchBundle, execVersion, must, paired, Runtime } from './common';

function main(): void {
  const rounds = Number(arg('--rounds', '30'));
  const runcPath = arg('--runc', '/usr/sbin/runc');
  if (!fs.existsSync(runcPath)) throw new Error(`${runcPath} not found: apt-get install runc`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
  try {
    const bundle = benchBundle(work);

    const runtimes: Runtime[] = [
      { name: 'tsrun', argv: [TSRUN] },
      { name: 'runc', argv: [runcPath] },
    ];
    const scenarios: Array<{ name: string; once: (rt: Runtime, root: string, id: string) => void }> = [
      { name: 'run /bin/true', once: (rt, root, id) => must(rt, root, ['run', '-b', bundle, id]) },
      {
        name: 'create+start+delete',
        once: (rt, root, id) => {
          must(rt, root, ['create', '-b', bundle, id]);
          must(rt, root, ['start', id]);
          must(rt, root, ['delete', '--force', id]);
        },
      },
    ];

    console.log(`tsrun vs runc (${execVersion(runcPath)}), ${rounds} paired rounds, ${os.cpus().length} cores`);
    console.log(`NODE_EXTRA_CA_CERTS is ${process.env.NODE_EXTRA_CA_CERTS ? 'set (adds ~30 ms to every Node start)' : 'not set'}`);
    for (const scenario of scenarios) {
      const m = paired(rounds, runtimes.map((rt) => ({
        name: rt.name,
        once: (round: number) => scenario.once(rt, path.join(work, `root-${rt.name}`), `bench-${round}`),
      })));
      console.log(`${scenario.name.padEnd(22)} tsrun ${m.tsrun.toFixed(1).padStart(7)} ms   runc ${m.runc.toFixed(1).padStart(7)} ms   ratio ${(m.tsrun / m.runc).toFixed(2)}`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main();
