/**
 * Issue 15, item 8 (first part): in a network namespace the container
 * makes, "lo" came up DOWN under tsrun (127.0.0.1 unreachable, also under
 * `podman --network none`); runc brings it up.  Compared with runc: lo's
 * flags and a TCP round trip over 127.0.0.1, for run and exec; and a
 * network namespace joined by path is left as it is (lo down there too,
 * under both).
 */
import { spawnSync } from 'child_process';
import t from 'tap';
import { IS_ROOT, makeBundle, uniqueId } from '../helpers';
import { cleanupBoth, referenceInstalled, RUNTIMES, seen, under, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

/**
 * lo's flags (0x9: UP|LOOPBACK), then a line sent over 127.0.0.1 to a
 * listener, which prints it.  No fixed sleeps (a loaded machine starts the
 * listener late): the client tries until it connects, for 5 s, and the
 * listener is waited for before its file is read (a file of its own: the
 * runtimes' containers share one rootfs).  The listener's stdin stays open
 * (a background job's is /dev/null, and busybox nc may quit on its EOF
 * before the line arrives).
 */
const PROBE =
  'cat /sys/class/net/lo/flags; got=$(mktemp); sleep 5 2>/dev/null | nc -l -p 4242 > $got & listener=$!; ' +
  'ok=; for i in $(seq 50); do echo round-trip | nc -w 1 127.0.0.1 4242 2>/dev/null && { echo sent; ok=1; break; }; sleep 0.1; done; ' +
  '[ -n "$ok" ] || { echo no-answer; kill $listener; }; wait $listener; cat $got; rm -f $got';

t.test('a new network namespace: lo is up, 127.0.0.1 answers, as in runc (run and exec)', async (t) => {
  const bundle = makeBundle(t, () => {}, ['/bin/sh', '-c', PROBE]);
  const id = uniqueId('lo');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same(seen(r.tsrun), seen(r.reference), `run: tsrun as the reference: ${r.tsrun.stderr}`);
  t.match(r.tsrun.stdout, /^0x9\n/, 'lo is UP');
  t.equal(r.tsrun.stdout, '0x9\nsent\nround-trip\n', 'the client sent a line over 127.0.0.1, and the listener got it');

  const running = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const rid = uniqueId('lox');
  cleanupBoth(t, running, rid);
  for (const rt of RUNTIMES)
    t.equal(
      under(rt, running, rid, ['run', '--detach', '-b', running.dir, '%ID%']).status,
      0,
      `${rt.name}: run --detach`,
    );
  const e = underBoth(running, rid, ['exec', '%ID%', '/bin/sh', '-c', PROBE]);
  t.same(seen(e.tsrun), seen(e.reference), `exec: tsrun as the reference: ${e.tsrun.stderr}`);
  t.match(e.tsrun.stdout, /^0x9\n/);
});

t.test('a network namespace joined by path is left as it is, as in runc', async (t) => {
  const name = `tsrun-compat-${process.pid}`;
  t.equal(spawnSync('ip', ['netns', 'add', name]).status, 0, 'ip netns add');
  t.teardown(() => {
    spawnSync('ip', ['netns', 'delete', name]);
  });
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.namespaces = c.linux!.namespaces!.map((n) =>
        n.type === 'network' ? { type: 'network', path: `/run/netns/${name}` } : n,
      );
    },
    ['/bin/cat', '/sys/class/net/lo/flags'],
  );
  const id = uniqueId('lojoin');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.same(seen(r.tsrun), seen(r.reference), `tsrun as the reference: ${r.tsrun.stderr}`);
  t.equal(r.tsrun.stdout, '0x8\n', "lo stays down in the joined namespace: it is not the container's to change");
});
