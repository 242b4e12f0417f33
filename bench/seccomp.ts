/**
 * What compiling seccomp costs, and what the cache under --root saves:
 * `run /bin/true` under Docker's default profile (spec-fixtures/seccomp)
 * with tsrun's filter cache warm, with it emptied before every run (so
 * libseccomp compiles each time), and with runc, in paired rounds.  Also
 * the compile alone, in this process, against a cache read.
 *
 *   node dist/bench/seccomp.js [--rounds N] [--runc PATH]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { compileSeccomp, normalizeSeccomp } from '../src/lib/seccomp';
import { PROJECT_ROOT, TSRUN } from '../test/helpers';
import { arg, benchBundle, execVersion, median, must, paired, timed } from './common';

function main(): void {
  const rounds = Number(arg('--rounds', '30'));
  const runcPath = arg('--runc', '/usr/sbin/runc');
  if (!fs.existsSync(runcPath)) throw new Error(`${runcPath} not found: apt-get install runc`);
  const profile = JSON.parse(
    fs.readFileSync(path.join(PROJECT_ROOT, 'spec-fixtures', 'seccomp', 'docker-default.json'), 'utf8'),
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
  try {
    const bundle = benchBundle(work, (c) => {
      c.linux!.seccomp = profile;
    });

    // In-process: the compile itself, against reading the cached program.
    const filter = normalizeSeccomp(profile);
    const cacheDir = path.join(work, 'cache');
    const compileMs = median(Array.from({ length: rounds }, () => timed(() => compileSeccomp(filter))));
    compileSeccomp(filter, cacheDir);
    const cachedMs = median(Array.from({ length: rounds }, () => timed(() => compileSeccomp(filter, cacheDir))));

    const tsrun = { name: 'tsrun', argv: [TSRUN] };
    const runc = { name: 'runc', argv: [runcPath] };
    const coldRoot = path.join(work, 'root-cold');
    const m = paired(rounds, [
      { name: 'warm', once: (i) => must(tsrun, path.join(work, 'root-warm'), ['run', '-b', bundle, `b${i}`]) },
      {
        name: 'cold',
        once: (i) => {
          fs.rmSync(path.join(coldRoot, '.cache'), { recursive: true, force: true });
          must(tsrun, coldRoot, ['run', '-b', bundle, `b${i}`]);
        },
      },
      { name: 'runc', once: (i) => must(runc, path.join(work, 'root-runc'), ['run', '-b', bundle, `b${i}`]) },
    ]);

    console.log(
      `seccomp: Docker's default profile (${filter.input.rules.length} rules), ${rounds} paired rounds, ${execVersion(runcPath)}`,
    );
    console.log(
      `compile in process        ${compileMs.toFixed(2).padStart(7)} ms   cache read ${cachedMs.toFixed(2).padStart(6)} ms   ratio ${(compileMs / cachedMs).toFixed(1)}`,
    );
    console.log(
      `run, tsrun cache warm     ${m.warm.toFixed(1).padStart(7)} ms   runc ${m.runc.toFixed(1).padStart(7)} ms   ratio ${(m.warm / m.runc).toFixed(2)}`,
    );
    console.log(
      `run, tsrun cache cold     ${m.cold.toFixed(1).padStart(7)} ms   runc ${m.runc.toFixed(1).padStart(7)} ms   ratio ${(m.cold / m.runc).toFixed(2)}`,
    );
    console.log(`the cache saves           ${(m.cold - m.warm).toFixed(1).padStart(7)} ms per run`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main();
