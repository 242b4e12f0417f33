/**
 * The entry of the compiled executable (dist/tsrun, made by
 * scripts/compile-exe.js with Bun): what bin/tsrun-node's loader does for
 * Node.  Bun's process.argv of a compiled executable starts with two
 * entries, as Node's does.
 */
import { main } from './main';

void main(process.argv.slice(2));
