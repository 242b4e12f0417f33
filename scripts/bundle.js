#!/usr/bin/env node
// Builds dist/tsrun.js and dist/tsrun.js.cache, which bin/tsrun loads:
//
//   dist/tsrun.js        every module of tsrun (dist/src, as tsc wrote it) and
//                        of commander, in one file: no module resolution and
//                        one read at start-up instead of some forty
//   dist/tsrun.js.cache  V8's code cache for it, made after loading every
//                        module once, so start-up skips parsing and compiling
//
// Node 20 has no built-in compile cache (module.enableCompileCache is 22.1+),
// so this is done with vm.Script's cachedData.  commander requires
// child_process at load for a feature tsrun does not use (executable
// subcommands), and loading it costs some 4 ms of Node's own streams, net
// and dgram: it gets child_process on first use instead.  Anything else a module
// requires (node builtins, tar-stream, the addon) is required as usual, from
// the module's own place in dist/src.  Run by `npm run build` after tsc;
// bin/tsrun falls back to dist/src when the bundle is older than tsc's output.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'dist', 'tsrun.js');

function jsFiles(dir) {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return jsFiles(rel);
    return e.name.endsWith('.js') ? [rel] : [];
  });
}

const files = [...jsFiles('dist/src'), ...jsFiles('node_modules/commander').filter((f) => !f.includes('/typings/'))];
const defs = files.map((file) =>
  `${JSON.stringify(file)}: function (exports, require, module, __filename, __dirname) {\n${fs.readFileSync(path.join(ROOT, file), 'utf8')}\n}`);

// The loader: CommonJS semantics for the modules in the table, Node's own require for the rest.
const source = `(function (root, nodeRequire) {
'use strict';
const path = nodeRequire('path');
const { createRequire } = nodeRequire('module');
const defs = {
${defs.join(',\n')}
};
const cache = Object.create(null);
const aliases = { commander: 'node_modules/commander/index.js' };
/** A builtin loaded when a property of it is first read. */
function lazyBuiltin(id) {
  let real;
  return new Proxy({}, { get: (_t, name) => (real ??= nodeRequire(id))[name] });
}
const lazy = { 'node_modules/commander/lib/command.js': { 'node:child_process': lazyBuiltin('node:child_process') } };
function resolveIn(from, id) {
  if (aliases[id]) return aliases[id];
  if (!id.startsWith('.')) return undefined;
  const base = path.posix.join(path.posix.dirname(from), id);
  for (const key of [base, base + '.js', base + '/index.js']) if (defs[key]) return key;
  return undefined;
}
function requireFrom(from) {
  let outside;
  const req = (id) => {
    const key = resolveIn(from, id);
    if (key) return load(key);
    const deferred = lazy[from]?.[id];
    if (deferred) return deferred;
    outside ??= createRequire(path.join(root, from));
    return outside(id);
  };
  req.resolve = (id) => {
    const key = resolveIn(from, id);
    if (key) return path.join(root, key);
    outside ??= createRequire(path.join(root, from));
    return outside.resolve(id);
  };
  return req;
}
function load(key) {
  const hit = cache[key];
  if (hit) return hit.exports;
  const module = { exports: {} };
  cache[key] = module;
  const file = path.join(root, key);
  defs[key].call(module.exports, module.exports, requireFrom(key), module, file, path.dirname(file));
  return module.exports;
}
return { load, keys: () => Object.keys(defs) };
})`;

fs.writeFileSync(OUT, source);

// Load every module once, then keep V8's compiled code for the next start.
const script = new vm.Script(source, { filename: OUT });
const bundle = script.runInThisContext()(ROOT, require);
for (const key of bundle.keys()) if (key.startsWith('dist/src/')) bundle.load(key);
fs.writeFileSync(`${OUT}.cache`, script.createCachedData());
console.log(`bundle: ${files.length} modules, ${(source.length / 1024).toFixed(0)} KB, cache ${(fs.statSync(`${OUT}.cache`).size / 1024).toFixed(0)} KB`);
