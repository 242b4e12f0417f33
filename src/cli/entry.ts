/**
 * The entry of the compiled executable (dist/tsrun, made by
 * scripts/compile-exe.js with Bun): what bin/tsrun-node's loader does for
 * Node.  Bun's process.argv of a compiled executable starts with two
 * entries, as Node's does.  The time before tsrun's modules load is taken
 * here, for --debug's timing line (main.ts).
 */
const entered = performance.now();
const { main } = require('./main') as typeof import('./main');

void main(process.argv.slice(2), entered);
