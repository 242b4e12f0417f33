/**
 * What the bench scripts share: running a runtime, timing it, and paired
 * rounds whose order alternates, so machine noise lands on every side.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { type Config } from '../src/lib/config';
import { baseConfig, FIXTURE_ROOTFS } from '../test/helpers';

export interface Runtime {
  name: string;
  argv: string[];
}

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

export function must(rt: Runtime, root: string, args: string[]): void {
  // stdio is /dev/null, not a pipe: a created container's init keeps its stdio open.
  const r = spawnSync(rt.argv[0], [...rt.argv.slice(1), '--root', root, ...args], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${rt.name} ${args.join(' ')} failed with status ${r.status}`);
}

export function timed(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function execVersion(runc: string): string {
  return spawnSync(runc, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? 'runc';
}

/**
 * `rounds` paired rounds (after two warm-ups) of every contender, the
 * order rotating each round; returns each contender's median in ms.
 */
export function paired(
  rounds: number,
  contenders: Array<{ name: string; once: (round: number) => void }>,
): Record<string, number> {
  const times: Record<string, number[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
  for (let i = -2; i < rounds; i++) {
    const shift = ((i % contenders.length) + contenders.length) % contenders.length;
    const order = [...contenders.slice(shift), ...contenders.slice(0, shift)];
    for (const c of order) {
      const ms = timed(() => c.once(i + 2));
      if (i >= 0) times[c.name].push(ms);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, xs]) => [name, median(xs)]));
}

/** A bundle under `work` running /bin/true on a read-only copy of the fixture rootfs; returns its path. */
export function benchBundle(work: string, mutate: (c: Config) => void = () => {}): string {
  const bundle = path.join(work, 'bundle');
  fs.mkdirSync(bundle);
  spawnSync('cp', ['-a', FIXTURE_ROOTFS, path.join(bundle, 'rootfs')]);
  const config = baseConfig(['/bin/true']);
  config.root!.readonly = true;
  mutate(config);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}
