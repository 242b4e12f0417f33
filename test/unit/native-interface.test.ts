/**
 * Issue 18: the addon's exported methods are exactly those the
 * NativeAddon interface (src/lib/native.ts) declares, so a method renamed
 * or added on one side only fails here, without root, rather than at the
 * first container that calls it.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { PROJECT_ROOT } from '../../src/lib/native';

/** The method names declared in `export interface NativeAddon { ... }`, read from the source. */
function declared(): string[] {
  const source = fs.readFileSync(path.join(PROJECT_ROOT, 'src', 'lib', 'native.ts'), 'utf8');
  const start = source.indexOf('export interface NativeAddon {');
  const body = source.slice(start, source.indexOf('\n}\n', start));
  return [...new Set([...body.matchAll(/^ {2}(\w+)\(/gm)].map((m) => m[1]))].sort();
}

t.test('the addon exports what NativeAddon declares, and nothing else', async (t) => {
  const addon = require(path.join(PROJECT_ROOT, 'build', 'Release', 'tsrun_native.node')) as Record<string, unknown>;
  // napi_define_properties makes them non-enumerable: own property names, not keys.
  const exported = Object.getOwnPropertyNames(addon).sort();
  const names = declared();
  t.ok(names.length > 30, `the interface was read (${names.length} methods)`);
  t.same(
    exported.filter((n) => !names.includes(n)),
    [],
    'exported by the addon, missing from NativeAddon',
  );
  t.same(
    names.filter((n) => !exported.includes(n)),
    [],
    'declared in NativeAddon, missing from the addon',
  );
  for (const name of exported) t.type(addon[name], 'function', `${name} is a function`);
});
