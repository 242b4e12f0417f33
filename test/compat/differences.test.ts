/**
 * Issue 15: each intended difference from runc is listed, with its reason,
 * in docs/differences-from-runc.md, and the list is exact: every key there
 * is named by a test that shows it (differsOnPurpose), and every key a test
 * names is there.  A difference nobody shows, or one shown and not
 * written down, fails here.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { PROJECT_ROOT } from '../helpers';
import { listedDifferences } from '../compat-helpers';

/** Every .ts file under test/, as written (not the compiled copies). */
function testSources(dir = path.join(PROJECT_ROOT, 'test')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return testSources(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

t.test('docs/differences-from-runc.md and the tests name the same differences', async (t) => {
  const listed = listedDifferences();
  t.ok(listed.length > 0, 'the list has entries');
  t.same([...new Set(listed)].sort(), [...listed].sort(), 'no key is listed twice');

  const shown = new Map<string, string[]>();
  for (const file of testSources()) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/differsOnPurpose\(\s*\w+\s*,\s*'([^']+)'\s*\)/g)) {
      shown.set(m[1], [...(shown.get(m[1]) ?? []), path.relative(PROJECT_ROOT, file)]);
    }
  }
  for (const key of listed) t.ok(shown.has(key), `"${key}" is shown by a test`);
  for (const [key, files] of shown) t.ok(listed.includes(key), `"${key}" (named in ${files.join(', ')}) is listed`);
});
