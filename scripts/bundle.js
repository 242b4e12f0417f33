#!/usr/bin/env node
// Builds dist/tsrun.js and dist/tsrun.js.cache, which bin/tsrun loads:
//
//   dist/tsrun.js        every module of tsrun (dist/src, as tsc wrote it), in
//                        one file: no module resolution and one read at
//                        start-up instead of some forty
//   dist/tsrun.js.cache  V8's code cache for it, made after loading every
//                        module once, so start-up skips parsing and compiling
//
// Node 20 has no built-in compile cache (module.enableCompileCache is 22.1+),
// so this is done with vm.Script's cachedData.  Anything else a module
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

// entry.js is the compiled executable's entry (scripts/compile-exe.js): it would run tsrun on load.
const files = jsFiles('dist/src').filter((f) => f !== 'dist/src/cli/entry.js');
const defs = files.map(
  (file) =>
    `${JSON.stringify(file)}: function (exports, require, module, __filename, __dirname) {\n${fs.readFileSync(path.join(ROOT, file), 'utf8')}\n}`,
);

// The loader: CommonJS semantics for the modules in the table, Node's own require for the rest.
const source = `(function (root, nodeRequire) {
'use strict';
const path = nodeRequire('path');
const { createRequire } = nodeRequire('module');
const defs = {
${defs.join(',\n')}
};
const cache = Object.create(null);
function resolveIn(from, id) {
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

// Load every module once and run the hot paths that need neither root nor
// a kernel feature (parse and plan a default config, the CLI's list, state,
// spec and help), so the functions they call are compiled too; then keep
// V8's compiled code for the next start.  A function first called at run
// time is compiled then: without this, a create pays some 15 ms for it.
const os = require('os');
const script = new vm.Script(source, { filename: OUT });
const bundle = script.runInThisContext()(ROOT, require);
for (const key of bundle.keys()) if (key.startsWith('dist/src/')) bundle.load(key);
warmUp(bundle).then(() => {
  fs.writeFileSync(`${OUT}.cache`, script.createCachedData());
  console.log(
    `bundle: ${files.length} modules, ${(source.length / 1024).toFixed(0)} KB, cache ${(fs.statSync(`${OUT}.cache`).size / 1024).toFixed(0)} KB`,
  );
});

async function warmUp(b) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bundle-'));
  const write = fs.writeSync;
  fs.writeSync = (fd, ...rest) => (fd === 1 || fd === 2 ? 0 : write(fd, ...rest)); // the CLI's output is not wanted here
  try {
    const { defaultSpec } = b.load('dist/src/lib/spec-default.js');
    const { parseConfig } = b.load('dist/src/lib/config.js');
    const { compileCreatePlan, compileExecPlan, processRlimits } = b.load('dist/src/lib/plan.js');
    const { encodePlan } = b.load('dist/src/lib/plan-format.js');
    const { readCgroupHierarchies } = b.load('dist/src/lib/host.js');
    const { normalizeSeccomp } = b.load('dist/src/lib/seccomp.js');
    const spec = defaultSpec({ rootless: false });
    spec.linux.seccomp = JSON.parse(
      fs.readFileSync(path.join(ROOT, 'spec-fixtures', 'seccomp', 'docker-default.json'), 'utf8'),
    );
    const config = parseConfig(JSON.stringify(spec));
    normalizeSeccomp(config.linux.seccomp);
    delete config.linux.seccomp;
    let mountinfo = '';
    try {
      mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      /* not Linux */
    }
    const host = {
      kindOf: () => 'dir',
      cgroupHierarchies: () => readCgroupHierarchies(mountinfo),
      isHostNamespace: () => false,
    };
    const plan = compileCreatePlan(config, {
      bundle: tmp,
      noPivot: false,
      consoleSocket: true,
      sessionKeyring: 'warm-up',
      host,
      cgroupDirs: {},
    });
    encodePlan(plan.ops);
    processRlimits(config.process);
    encodePlan(compileExecPlan(config.process, { differing: {} }));
    const { main } = b.load('dist/src/cli/main.js');
    const root = path.join(tmp, 'root');
    for (const argv of [
      ['--root', root, 'list'],
      ['--root', root, 'state', 'none'],
      ['--root', root, 'kill', 'none', 'KILL'],
      ['--root', root, 'delete', '--force', 'none'],
      ['spec', '--bundle', tmp],
      ['--help'],
    ]) {
      await main(argv);
    }
  } catch (err) {
    fs.writeSync = write;
    console.log(`bundle: warm-up stopped early (${err.message}); the cache is smaller, nothing else changes`);
  } finally {
    fs.writeSync = write;
    process.exitCode = 0;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
