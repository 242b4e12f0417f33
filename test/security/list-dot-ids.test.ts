/**
 * Issue 14, finding 9: containers whose id starts with "." were hidden
 * from `list` (state showed them; runc lists them).  An engine or an
 * operator looking for what runs, with list, missed them: a container that
 * never shows up is never cleaned up either.  Ids follow runc's rule
 * (letters, digits, "_", "+", "-", "."; not "." or ".."), and list shows
 * every container that exists: table, JSON and -q.  Only ".cache", the
 * name of tsrun's own cache under --root, is refused as an id (runc would
 * take it; a deliberate difference, named in the error).
 */
import t from 'tap';
import { cleanupContainer, IS_ROOT, makeBundle, tsrun } from '../helpers';
import { differsOnPurpose } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

t.test('ids starting with "." are listed like any other', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const ids = [`.hidden-${process.pid}`, `..two-${process.pid}`, `.a.b-${process.pid}`, `plain-${process.pid}`];
  for (const id of ids) {
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['run', '--detach', '-b', bundle.dir, id]);
    t.equal(r.status, 0, `run ${id}: ${r.stderr}`);
  }
  t.same(
    tsrun(bundle.root, ['list', '-q']).stdout.split('\n').filter(Boolean),
    [...ids].sort(),
    'list -q shows all four',
  );
  const json = JSON.parse(tsrun(bundle.root, ['list', '--format', 'json']).stdout) as Array<{
    id: string;
    status: string;
  }>;
  t.same(json.map((c) => c.id).sort(), [...ids].sort(), 'list --format json shows all four');
  t.ok(
    json.every((c) => c.status === 'running'),
    'all running',
  );
  const table = tsrun(bundle.root, ['list']).stdout;
  for (const id of ids)
    t.match(
      table,
      new RegExp(`^${id.replace(/\./g, '\\.').replace(/\+/g, '\\+')}\\s+\\d+\\s+running`, 'm'),
      `the table has ${id}`,
    );
  for (const id of ids) t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0, `delete ${id}`);
  t.equal(tsrun(bundle.root, ['list', '-q']).stdout, '', 'and then none');
});

t.test('".cache" is refused as an id, by name; "." and ".." as runc refuses them', async (t) => {
  differsOnPurpose(t, 'cache-id');
  const bundle = makeBundle(t, () => {}, ['/bin/true']);
  const cache = tsrun(bundle.root, ['run', '-b', bundle.dir, '.cache']);
  t.not(cache.status, 0);
  t.match(cache.stderr, /invalid container id "\.cache": reserved for tsrun's cache/);
  for (const id of ['.', '..']) {
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.not(r.status, 0, `"${id}" refused`);
    t.match(r.stderr, /invalid container id/);
  }
});
