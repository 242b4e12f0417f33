#!/usr/bin/env node
// Writes tsrun's man pages into DIR (tsrun.1, tsrun-VERB.1), made from the
// command definitions by src/cli/docs.ts; scripts/install.sh runs it.
'use strict';
const fs = require('fs');
const path = require('path');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/man.js DIR');
  process.exit(2);
}
const dist = path.join(__dirname, '..', 'dist', 'src', 'cli');
const { manPages } = require(path.join(dist, 'docs.js'));
const { fullProgram, VERSION } = require(path.join(dist, 'main.js'));
fs.mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(manPages(fullProgram().describe(), VERSION)))
  fs.writeFileSync(path.join(dir, name), text);
