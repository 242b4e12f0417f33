/**
 * Issue 16: tsrun ships as a Bun-compiled executable, and such an
 * executable reads `.env` and `bunfig.toml` from the directory it is
 * started in unless told not to.  An engine starts tsrun in directories
 * tsrun does not choose (a bundle, an engine's state dir), and runtime
 * hooks with no `env` of their own inherit tsrun's environment: a `.env`
 * there would put variables into the hooks (and into tsrun itself), and a
 * `bunfig.toml` could preload code into tsrun.  Neither is read.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { cleanupContainer, IS_ROOT, makeBundle, tempDir, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

t.test('the executable reads no .env or bunfig.toml from the directory it starts in', async (t) => {
  const dir = tempDir(t, 'tsrun-startdir-');
  fs.chmodSync(dir, 0o755);
  const preloaded = path.join(dir, 'preloaded');
  fs.writeFileSync(path.join(dir, '.env'), 'TSRUN_FROM_DOTENV=leaked\n');
  fs.writeFileSync(path.join(dir, 'preload.js'), `require('fs').writeFileSync(${JSON.stringify(preloaded)}, 'ran');\n`);
  fs.writeFileSync(path.join(dir, 'bunfig.toml'), 'preload = ["./preload.js"]\n');
  const hookOut = path.join(dir, 'hook-env');
  const bundle = makeBundle(
    t,
    (c) => {
      c.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', `env > ${hookOut}`] }] };
    },
    ['/bin/true'],
  );
  const id = uniqueId('startdir');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id], { cwd: dir });
  t.equal(r.status, 0, r.stderr);
  t.ok(fs.existsSync(hookOut), "the hook ran, with tsrun's environment");
  t.notMatch(fs.readFileSync(hookOut, 'utf8'), /TSRUN_FROM_DOTENV/, 'nothing of .env reached it');
  t.notOk(fs.existsSync(preloaded), 'bunfig.toml preloaded nothing');
});
