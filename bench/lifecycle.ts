/**
 * tsrun against runc, side by side on the same bundle: `run` of /bin/true,
 * and create + start + delete.  Runs are paired (each round times both
 * runtimes, alternating which goes first) and the report gives medians and
 * the tsrun/runc ratio, so machine noise affects both sides alike.
 *
 *   node dist/bench/lifecycle.js [--rounds N] [--runc PATH]
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { baseConfig, FIXTURE_ROOTFS, TSRUN } from '../test/helpers';

interface Runtime {
  name: string;
  argv: string[];
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function must(rt: Runtime, root: string, args: string[]): void {
  // stdio is /dev/null, not a pipe: a created container's init keeps its stdio open.
  const r = spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', root, ...args], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${rt.name} ${args.join(' ')} failed with status ${r.status}`);
}

function timed(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function main(): void {
  const rounds = Number(arg('--rounds', '30'));
  const runcPath = arg('--runc', '/usr/sbin/runc');
  if (!fs.existsSync(runcPath)) throw new Error(`${runcPath} not found: apt-get install runc`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
  try {
    const bundle = path.join(work, 'bundle');
    fs.mkdirSync(bundle);
    spawnSync('cp', ['-a', FIXTURE_ROOTFS, path.join(bundle, 'rootfs')]);
    const config = baseConfig(['/bin/true']);
    config.root!.readonly = true;
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));

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
      const times: Record<string, number[]> = { tsrun: [], runc: [] };
      for (let i = -2; i < rounds; i++) { // two warm-up rounds
        const order = i % 2 === 0 ? runtimes : [...runtimes].reverse();
        for (const rt of order) {
          const root = path.join(work, `root-${rt.name}`);
          const ms = timed(() => scenario.once(rt, root, `bench-${i + 2}`));
          if (i >= 0) times[rt.name].push(ms);
        }
      }
      const t = median(times.tsrun);
      const r = median(times.runc);
      console.log(`${scenario.name.padEnd(22)} tsrun ${t.toFixed(1).padStart(7)} ms   runc ${r.toFixed(1).padStart(7)} ms   ratio ${(t / r).toFixed(2)}`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function execVersion(runc: string): string {
  return spawnSync(runc, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? 'runc';
}

main();
