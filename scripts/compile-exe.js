#!/usr/bin/env node
// Builds dist/tsrun: tsrun as one executable, compiled with Bun from tsc's
// output (dist/src/cli/entry.js) with bytecode, so a call of tsrun starts
// in about the time runc's does (issue 16: Node's start-up alone is as
// long as runc's whole `run`).  bin/tsrun links to it; engines are given
// that path, with no launcher in front.  The addon and the static helpers
// stay files in the checkout, whose path is compiled in (native.ts).
// Bun comes pinned from the npm registry (@oven/bun-linux-x64, the binary
// inside the package).  Run by `npm run build` after tsc.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const BUN = path.join(ROOT, 'node_modules', '@oven', 'bun-linux-x64', 'bin', 'bun');
const OUT = path.join(ROOT, 'dist', 'tsrun');

if (!fs.existsSync(BUN)) {
  console.error(`compile-exe: ${BUN} is missing: run npm install (it is a devDependency)`);
  process.exit(1);
}
const tmp = `${OUT}.tmp`;
// The commit, for --version (as runc prints its own); "-dirty" when the tree has changes.
const git = (args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
const head = git(['rev-parse', '--short=12', 'HEAD']);
const commit =
  head.status === 0
    ? head.stdout.trim() + (git(['diff', '--quiet', 'HEAD', '--']).status === 0 ? '' : '-dirty')
    : 'unknown';
// A Bun executable reads .env and bunfig.toml from whatever directory it is
// started in, by default: an engine starts tsrun in directories tsrun does
// not choose, and runtime hooks inherit tsrun's environment.  Neither is read.
const r = spawnSync(
  BUN,
  [
    'build',
    '--compile',
    '--bytecode',
    '--minify',
    '--target=bun-linux-x64',
    '--no-compile-autoload-dotenv',
    '--no-compile-autoload-bunfig',
    '--no-compile-autoload-tsconfig',
    // The checkout, for the addon and helpers (native.ts): explicit, whatever Bun makes of __dirname.
    '--define',
    `TSRUN_BUILD_ROOT=${JSON.stringify(ROOT)}`,
    '--define',
    `TSRUN_COMMIT=${JSON.stringify(commit)}`,
    path.join(ROOT, 'dist', 'src', 'cli', 'entry.js'),
    '--outfile',
    tmp,
  ],
  { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' },
);
if (r.status !== 0) {
  console.error(`compile-exe: bun build failed (status ${r.status})`);
  process.exit(1);
}
// Replaced whole: a running tsrun keeps its own copy of the old file.
fs.renameSync(tmp, OUT);
console.log(`compile-exe: ${path.relative(ROOT, OUT)}, ${(fs.statSync(OUT).size / 1048576).toFixed(0)} MiB`);
