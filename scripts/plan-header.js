// Writes native/plan-ops.h and plan-decode.h from the launch plan's schema (src/lib/plan-header.ts),
// using tsc's output: run `npx tsc` (or npm run build) first; `npm run plan-header` does both.
const fs = require('fs');
const path = require('path');
const { planOpsHeader, planDecodeHeader } = require('../dist/src/lib/plan-header');

for (const [name, make] of [
  ['plan-ops.h', planOpsHeader],
  ['plan-decode.h', planDecodeHeader],
]) {
  const target = path.join(__dirname, '..', 'native', name);
  fs.writeFileSync(target, make());
  console.log(`wrote ${path.relative(process.cwd(), target)}`);
}
