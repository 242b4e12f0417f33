/**
 * Issue 15, item 2: linux.netDevices was validated and ignored.  Now a
 * host interface moves into the container's network namespace as
 * runtime-spec 1.3 says (and runc 1.3+ does; runc 1.1.5 predates it and
 * ignores it: docs/differences-from-runc.md, "net-devices"): renamed,
 * with its permanent global addresses (IPv4 and IPv6) and no others, and
 * up.  Giving it back is the kernel's when the namespace goes: this
 * machine's kernel has no dummy driver, so veth pairs stand in, and a
 * virtual interface is destroyed with its namespace (its host peer too).
 */
import { spawnSync } from 'child_process';
import t from 'tap';
import { IS_ROOT, leftovers, makeBundle, tsrun, uniqueId, waitFor } from '../helpers';
import { cleanupBoth, differsOnPurpose, referenceInstalled, RUNTIMES, under } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

let pairs = 0;
/** A veth pair on the host ("<name>" moves, "<name>p" stays), removed at teardown if still there. */
function hostInterface(t: { teardown(fn: () => void): void }, addresses: string[][] = []): string {
  const name = `tsn${process.pid % 100000}x${++pairs}`;
  const ip = (...args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  t.teardown(() => {
    spawnSync('ip', ['link', 'delete', name]);
  });
  for (const a of addresses) ip('addr', 'add', ...a, 'dev', name);
  ip('link', 'set', name, 'up');
  return name;
}

function onHost(name: string): boolean {
  return spawnSync('ip', ['link', 'show', name]).status === 0;
}

function hostFlags(name: string): string {
  return spawnSync('ip', ['-o', 'link', 'show', name], { encoding: 'utf8' }).stdout;
}

const SHOW = ['/bin/sh', '-c', 'ip -o link show; ip -o addr show'];

t.test('moved, renamed, its global addresses kept (IPv4 and IPv6), up; gone with the namespace', async (t) => {
  differsOnPurpose(t, 'net-devices');
  const name = hostInterface(t, [
    ['192.0.2.10/24'],
    ['2001:db8::10/64', 'nodad'],
    ['198.51.100.1/24', 'scope', 'link'],
  ]);
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.netDevices = { [name]: { name: 'ctr0' } };
    },
    ['/bin/sleep', '1000'],
  );
  const id = uniqueId('netdev');
  cleanupBoth(t, bundle, id);
  const root = `${bundle.root}-tsrun`;
  const tid = `${id}-tsrun`;
  const r = tsrun(root, ['run', '--detach', '-b', bundle.dir, tid]);
  t.equal(r.status, 0, r.stderr);
  t.notOk(onHost(name), 'no longer on the host');
  const inside = tsrun(root, ['exec', tid, ...SHOW]).stdout;
  t.match(inside, /\d+: ctr0@\S+: <[^>]*\bUP\b[^>]*>/, 'renamed ctr0, and up');
  t.notMatch(inside, new RegExp(name), 'the host name is gone inside');
  t.match(
    inside,
    /ctr0\s+inet 192\.0\.2\.10\/24 brd 192\.0\.2\.255 scope global/,
    'the IPv4 address, with its broadcast',
  );
  t.match(
    inside,
    /ctr0\s+inet6 2001:db8::10\/64 scope global/,
    'the IPv6 address (read before the link went down, which drops it)',
  );
  t.notMatch(inside, /198\.51\.100\.1/, 'a link-scope address stays behind, as the spec says');

  t.equal(tsrun(root, ['delete', '--force', tid]).status, 0);
  t.ok(
    await waitFor(() => !onHost(`${name}p`), 10_000),
    'a virtual interface dies with the namespace, its host peer too',
  );
  t.same(leftovers({ ...bundle, root }, tid), [], 'nothing left');

  // The reference (runc 1.1.5) predates netDevices: the interface stays on the host.
  const kept = hostInterface(t);
  const old = makeBundle(
    t,
    (c) => {
      c.linux!.netDevices = { [kept]: {} };
    },
    ['/bin/true'],
  );
  const oid = uniqueId('netdevref');
  cleanupBoth(t, old, oid);
  t.equal(under(RUNTIMES[0], old, oid, ['run', '-b', old.dir, '%ID%']).status, 0, 'the reference runs it');
  t.ok(onHost(kept), 'and leaves the interface where it was');
});

t.test('a "%d" template is numbered by the kernel; two devices, the same host name kept inside', async (t) => {
  const a = hostInterface(t);
  const b = hostInterface(t);
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.netDevices = { [a]: { name: 'eth%d' }, [b]: {} };
    },
    SHOW,
  );
  const id = uniqueId('netdevtpl');
  cleanupBoth(t, bundle, id);
  const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /\d+: eth0@\S+: <[^>]*\bUP\b/, 'eth%d became eth0, up');
  t.match(r.stdout, new RegExp(`\\d+: ${b}@\\S+: <[^>]*\\bUP\\b`), 'no name: the host name is kept');
});

t.test(
  'refused with nothing moved and nothing left: a taken name, a missing device, no network namespace',
  async (t) => {
    const taken = hostInterface(t);
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.netDevices = { [taken]: { name: 'lo' } };
      },
      ['/bin/true'],
    );
    const id = uniqueId('netdevlo');
    cleanupBoth(t, bundle, id);
    const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.not(r.status, 0, 'a name the container already has: refused');
    t.match(
      r.stderr,
      new RegExp(`linux\\.netDevices\\["${taken}"\\]: .*the container already has an interface named lo`),
      r.stderr.trim(),
    );
    t.ok(onHost(taken), 'the interface is still on the host (the kernel would have moved it, then failed the rename)');
    t.match(hostFlags(taken), /<[^>]*\bUP\b/, 'and still up');
    t.same(leftovers({ ...bundle, root: `${bundle.root}-tsrun` }, `${id}-tsrun`), [], 'nothing left');

    const missing = makeBundle(
      t,
      (c) => {
        c.linux!.netDevices = { 'tsrun-absent0': {} };
      },
      ['/bin/true'],
    );
    const mid = uniqueId('netdevmissing');
    cleanupBoth(t, missing, mid);
    const m = under(RUNTIMES[1], missing, mid, ['run', '-b', missing.dir, '%ID%']);
    t.not(m.status, 0);
    t.match(
      m.stderr,
      /linux\.netDevices\["tsrun-absent0"\]: tsrun-absent0: no such network interface on the host/,
      m.stderr.trim(),
    );
    t.same(leftovers({ ...missing, root: `${missing.root}-tsrun` }, `${mid}-tsrun`), [], 'nothing left');

    const hostNet = makeBundle(
      t,
      (c) => {
        c.linux!.namespaces = c.linux!.namespaces!.filter((n) => n.type !== 'network');
        c.linux!.netDevices = { [taken]: {} };
      },
      ['/bin/true'],
    );
    const hid = uniqueId('netdevhost');
    cleanupBoth(t, hostNet, hid);
    const h = under(RUNTIMES[1], hostNet, hid, ['run', '-b', hostNet.dir, '%ID%']);
    t.not(h.status, 0);
    t.match(h.stderr, /linux\.netDevices: requires a network namespace in linux\.namespaces/, h.stderr.trim());

    const badName = makeBundle(
      t,
      (c) => {
        c.linux!.netDevices = { [taken]: { name: 'a/b' } };
      },
      ['/bin/true'],
    );
    const bid = uniqueId('netdevname');
    cleanupBoth(t, badName, bid);
    const n = under(RUNTIMES[1], badName, bid, ['run', '-b', badName.dir, '%ID%']);
    t.not(n.status, 0);
    t.match(n.stderr, /linux\.netDevices(\.\w+|\[.*\])\.name: "a\/b" is not an interface name/, n.stderr.trim());
    t.ok(onHost(taken), 'still on the host after every refusal');
  },
);

t.test("a host interface name of 15 bytes (the kernel's longest) moves too", async (t) => {
  const long = `tsl${String(process.pid).padStart(7, '0').slice(-7)}abcde`.slice(0, 15);
  t.equal(long.length, 15);
  spawnSync('ip', ['link', 'add', long, 'type', 'veth', 'peer', 'name', `${long.slice(0, 13)}p`]);
  t.teardown(() => {
    spawnSync('ip', ['link', 'delete', long]);
  });
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.netDevices = { [long]: { name: 'ctr0' } };
    },
    ['/bin/cat', '/sys/class/net/ctr0/operstate'],
  );
  const id = uniqueId('netdevlong');
  cleanupBoth(t, bundle, id);
  const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.equal(r.status, 0, r.stderr);
});

/**
 * Name, addresses and state of a host interface, as `ip` shows them.  Left
 * out: the index, the qdisc (the kernel's, reset by a move), and an IPv4
 * address's broadcast: the move gives one that had none the usual one (as
 * runc's netlink library does), and it comes back with it.
 */
function hostView(name: string): string {
  const link = spawnSync('ip', ['-o', 'link', 'show', name], { encoding: 'utf8' })
    .stdout.replace(/^\d+: /, '')
    .replace(/ link-netns \S+| link-netnsid \d+/, '');
  const addrs = spawnSync('ip', ['-o', 'addr', 'show', 'dev', name, 'scope', 'global'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .map((l) =>
      l
        .replace(/^\d+: /, '')
        .replace(/\\.*$/, '')
        .trim(),
    )
    .sort()
    .join('\n');
  return `${link
    .replace(/state \S+ /, '')
    .replace(/qdisc \S+ /, '')
    .replace(/@\S+:/, ':')
    .trim()}\n${addrs.replace(/ brd \S+/g, '')}`;
}

for (const [joined, failing] of [
  [false, 'hook'],
  [true, 'hook'],
  [false, 'init'],
  [true, 'init'],
] as const) {
  t.test(
    `a create that fails after the move (${failing === 'hook' ? 'a createRuntime hook' : 'the init itself, a missing program'}) gives the interfaces back as they were (${joined ? 'a network namespace joined by path' : 'a new network namespace'})`,
    async (t) => {
      differsOnPurpose(t, 'net-devices');
      const up = hostInterface(t, [['192.0.2.20/24'], ['2001:db8::20/64', 'nodad']]);
      const down = hostInterface(t, [['198.51.100.20/24']]);
      spawnSync('ip', ['link', 'set', down, 'down']);
      const before = { up: hostView(up), down: hostView(down) };
      const netns = `tsrun-nd${process.pid % 100000}`;
      if (joined) {
        t.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0, 'a persistent network namespace');
        t.teardown(() => {
          spawnSync('ip', ['netns', 'delete', netns]);
        });
      }
      const bundle = makeBundle(
        t,
        (c) => {
          if (joined)
            c.linux!.namespaces = [
              ...c.linux!.namespaces!.filter((n) => n.type !== 'network'),
              { type: 'network', path: `/run/netns/${netns}` },
            ];
          c.linux!.netDevices = { [up]: { name: 'ctr0' }, [down]: { name: 'ctr%d' } };
          // After the devices moved: a hook that fails the create while the init waits, or the init failing and gone at once.
          if (failing === 'hook') c.hooks = { createRuntime: [{ path: '/bin/false' }] };
        },
        [failing === 'hook' ? '/bin/true' : '/no/such/program'],
      );
      const id = uniqueId('netdevback');
      cleanupBoth(t, bundle, id);
      const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
      t.equal(r.status, 1, `the create fails: ${r.stderr.trim()}`);
      t.notMatch(r.stderr, /give it back/, 'no device stayed behind');
      t.ok(onHost(`${up}p`) && onHost(`${down}p`), 'the host peers still exist (the pairs were not destroyed)');
      t.same(
        { up: hostView(up), down: hostView(down) },
        before,
        'back on the host, with their names, addresses and up or down state',
      );
      if (joined) {
        const left = spawnSync('ip', ['netns', 'exec', netns, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
        t.notMatch(left, /ctr/, 'nothing of them left in the joined namespace');
      }
      t.same(leftovers({ ...bundle, root: `${bundle.root}-tsrun` }, `${id}-tsrun`), [], 'nothing left');
    },
  );
}
