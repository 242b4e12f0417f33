/**
 * Capabilities as configured, for run and exec: the five sets exactly,
 * a non-root user keeping what it was granted, inheritable and ambient
 * never filled by default (CVE-2022-29162).
 */
import t from 'tap';
import { cleanupContainer, IS_ROOT, leftovers, makeBundle, runChecker, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const bit = (n: number): bigint => 1n << BigInt(n);
const CAP = { CHOWN: 0, KILL: 5, NET_BIND_SERVICE: 10, SYS_ADMIN: 21, AUDIT_WRITE: 29 };
const hex = (mask: bigint): string => mask.toString(16).padStart(16, '0');
const DEFAULT = bit(CAP.AUDIT_WRITE) | bit(CAP.KILL) | bit(CAP.NET_BIND_SERVICE);
const defaultCaps = {
  bounding: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
  effective: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
  permitted: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
};

t.test("runc spec's default capabilities, exactly", async (t) => {
  const { report } = runChecker(t, (c) => {
    c.process!.capabilities = defaultCaps;
  });
  t.same(report.capabilities, {
    CapInh: hex(0n),
    CapPrm: hex(DEFAULT),
    CapEff: hex(DEFAULT),
    CapBnd: hex(DEFAULT),
    CapAmb: hex(0n),
  });
});

t.test(
  'a non-root user without ambient capabilities has none after exec (the kernel rule, as with runc)',
  async (t) => {
    const { report } = runChecker(t, (c) => {
      c.process!.user = { uid: 1000, gid: 1000 };
      c.process!.capabilities = { ...defaultCaps, effective: ['CAP_KILL'], permitted: ['CAP_KILL', 'CAP_CHOWN'] };
    });
    t.equal(report.uid, 1000);
    t.equal(report.capabilities.CapEff, hex(0n));
    t.equal(report.capabilities.CapPrm, hex(0n));
    t.equal(report.capabilities.CapBnd, hex(DEFAULT), 'the bounding set is as configured');
  },
);

t.test('ambient capabilities survive the exec of a non-root program', async (t) => {
  const nbs = ['CAP_NET_BIND_SERVICE'];
  const { report } = runChecker(t, (c) => {
    c.process!.user = { uid: 1000, gid: 1000 };
    c.process!.capabilities = { bounding: nbs, effective: nbs, permitted: nbs, inheritable: nbs, ambient: nbs };
  });
  t.equal(report.capabilities.CapAmb, hex(bit(CAP.NET_BIND_SERVICE)));
  t.equal(report.capabilities.CapEff, hex(bit(CAP.NET_BIND_SERVICE)), 'effective after exec, through the ambient set');
});

t.test("exec: the container's capabilities by default; --cap adds, never to inheritable", async (t) => {
  const bundle = makeBundle(
    t,
    (c) => {
      c.process!.capabilities = defaultCaps;
    },
    ['/bin/checker', 'sleep', '30'],
  );
  const id = uniqueId('caps');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
  const plain = JSON.parse(tsrun(bundle.root, ['exec', id, '/bin/checker']).stdout);
  t.equal(plain.capabilities.CapEff, hex(DEFAULT));
  const r = tsrun(bundle.root, ['exec', '--cap', 'CAP_SYS_ADMIN', id, '/bin/checker']);
  t.equal(r.status, 0, r.stderr);
  const withCap = JSON.parse(r.stdout);
  t.equal(withCap.capabilities.CapEff, hex(DEFAULT | bit(CAP.SYS_ADMIN)));
  t.equal(withCap.capabilities.CapBnd, hex(DEFAULT | bit(CAP.SYS_ADMIN)));
  t.equal(withCap.capabilities.CapInh, hex(0n), 'CVE-2022-29162: inheritable stays empty');
  const unknown = tsrun(bundle.root, ['exec', '--cap', 'CAP_NOPE', id, '/bin/true']);
  t.equal(unknown.status, 0, 'an unknown --cap: a warning, as runc');
  t.equal(
    unknown.stderr,
    'tsrun: warning: --cap: unknown capabilities ignored: "CAP_NOPE"\n',
    'the warning names the flag the user typed, once',
  );
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});

t.test(
  'an unknown capability is left out with a warning (runtime-spec 1.3, runc), the known ones applied',
  async (t) => {
    const bundle = makeBundle(t, (c) => {
      c.process!.capabilities = {
        bounding: ['CAP_KILL', 'CAP_FLY'],
        effective: ['CAP_KILL', 'CAP_FLY'],
        permitted: ['CAP_KILL'],
      };
    });
    const id = uniqueId('caps');
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, /^tsrun: warning: process\.capabilities: unknown capabilities ignored: "CAP_FLY"\n$/);
    t.equal(JSON.parse(r.stdout).capabilities.CapBnd, hex(bit(CAP.KILL)));
    t.same(leftovers(bundle, id), []);
  },
);
