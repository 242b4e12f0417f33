/**
 * linux.resources.devices under runc and tsrun: the same device rules in
 * the container's cgroup (devices.list, on a cgroup v1 host) and the same
 * devices opened or refused inside (any host), for configs with no rules
 * at all, runc's default deny-all, an allow-all (privileged), allow and
 * deny lists, a wildcard major, access taken out of part of a rule, and
 * a default device named in linux.devices.  Each device is opened for
 * reading and for reading and writing (O_RDWR), as an allow must grant
 * all of the access and a deny takes any part of it.  On cgroup v2 the
 * rules become an eBPF filter; there runc's filter lets an O_RDWR open
 * through a rule that denies only "w" under an allow-all, and tsrun's
 * refuses it as cgroup v1 does.  runc always starts a container from
 * "nothing allowed" plus its default allow-list: a config without
 * linux.resources once left a tsrun container every device (its parent
 * cgroup's allow-all), /dev/fuse and the host's /dev/console (5:1) among
 * them, and tsrun's defaults lacked runc's /dev/net/tun.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { readHierarchies } from '../../src/lib/cgroup/manager';
import { type DeviceRuleConfig } from '../../src/lib/cgroup/resources';
import { type Config } from '../../src/lib/config';
import { IS_ROOT, leftovers, makeBundle, uniqueId } from '../helpers';
import { cleanupBoth, differsOnPurpose, referenceInstalled, RUNTIMES, under } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const devicesHierarchy = readHierarchies().find((h) => h.version === 1 && h.controllers.includes('devices'));

/** Nodes made in every container, so each can be tried whatever the rules. */
const NODES: Array<{ path: string; type: 'c' | 'b'; major: number; minor: number }> = [
  { path: '/dev/fuse', type: 'c', major: 10, minor: 229 },
  { path: '/dev/net/tun', type: 'c', major: 10, minor: 200 },
  { path: '/dev/hostconsole', type: 'c', major: 5, minor: 1 },
  { path: '/dev/loop7', type: 'b', major: 7, minor: 7 },
];

/** Opened as well as the nodes: a default device, whose rule runc leaves out when linux.devices names it. */
const PROBED = [...NODES.map((n) => n.path), '/dev/full'];

const denyAll: DeviceRuleConfig = { allow: false, access: 'rwm' };
const allowAll: DeviceRuleConfig = { allow: true, access: 'rwm' };
const fuse = (allow: boolean, access: string): DeviceRuleConfig => ({
  allow,
  type: 'c',
  major: 10,
  minor: 229,
  access,
});
/** The cases where, on cgroup v2, tsrun refuses an open runc's filter lets through (device-deny-partial-access). */
const V2_DIFFERS: Record<string, string> = {
  'allow-all, then writing fuse denied (a partial deny)': '/dev/fuse <>',
};
const CASES: Array<[string, (c: Config) => void]> = [
  ['no linux.resources', (c) => delete c.linux!.resources],
  ['linux.resources without devices', (c) => (c.linux!.resources = { pids: { limit: 100 } })],
  ["runc spec's deny-all", (c) => (c.linux!.resources = { devices: [denyAll] })],
  ['allow-all (privileged)', (c) => (c.linux!.resources = { devices: [allowAll] })],
  [
    'deny-all, then fuse allowed',
    (c) =>
      (c.linux!.resources = { devices: [denyAll, { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }] }),
  ],
  [
    'deny-all, then tun denied (the defaults come after it)',
    (c) =>
      (c.linux!.resources = { devices: [denyAll, { allow: false, type: 'c', major: 10, minor: 200, access: 'rwm' }] }),
  ],
  [
    'allow-all, then reading and writing fuse denied (a deny list)',
    (c) =>
      (c.linux!.resources = { devices: [allowAll, { allow: false, type: 'c', major: 10, minor: 229, access: 'rw' }] }),
  ],
  [
    'deny-all, then c *:229 allowed (a wildcard major)',
    (c) => (c.linux!.resources = { devices: [denyAll, { allow: true, type: 'c', minor: 229, access: 'r' }] }),
  ],
  [
    'deny-all, fuse allowed rw, then writing it denied',
    (c) => (c.linux!.resources = { devices: [denyAll, fuse(true, 'rw'), fuse(false, 'w')] }),
  ],
  [
    'allow-all, then writing fuse denied (a partial deny)',
    (c) => (c.linux!.resources = { devices: [allowAll, fuse(false, 'w')] }),
  ],
  [
    'fuse allowed, then a type-a deny of mknod only (it denies everything)',
    (c) => (c.linux!.resources = { devices: [denyAll, fuse(true, 'rwm'), { allow: false, access: 'm' }] }),
  ],
  [
    'deny-all, and linux.devices names /dev/full (runc leaves its default rule out)',
    (c) => {
      c.linux!.devices!.push({ path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666 });
      c.linux!.resources = { devices: [denyAll] };
    },
  ],
];

/** The container's devices.list, sorted (runc and the kernel may order it differently). */
function devicesList(pid: number): string[] {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes('devices'))!;
  const file = path.join(devicesHierarchy!.mountPoint, line.split(':')[2], 'devices.list');
  return fs.readFileSync(file, 'utf8').trim().split('\n').sort();
}

for (const [label, mutate] of CASES) {
  t.test(`${label}: the same rules and the same devices open as under runc`, async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        c.linux!.devices = NODES.map((n) => ({ ...n, fileMode: 0o666 }));
        mutate(c);
      },
      ['/bin/sleep', '1000'],
    );
    const id = uniqueId('devrules');
    cleanupBoth(t, bundle, id);
    const seenBy: Record<string, unknown> = {};
    for (const rt of RUNTIMES) {
      const started = under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']);
      t.equal(started.status, 0, `${rt.name}: run --detach: ${started.stderr}`);
      const pid = JSON.parse(under(rt, bundle, id, ['state', '%ID%']).stdout).pid as number;
      // Opened only: past the devices cgroup each driver says what it says (fuse refuses a read, loop has no file).
      const script =
        'for dev; do for how in "<" "<>"; do (eval "exec 3$how$dev") 2>&1 | grep -q "Operation not permitted" && echo "$dev $how: refused" || echo "$dev $how: let through"; done; done';
      const r = under(rt, bundle, id, ['exec', '%ID%', '/bin/sh', '-c', script, 'sh', ...PROBED]);
      t.equal(r.status, 0, `${rt.name}: the opens ran: ${r.stderr}`);
      const opened = r.stdout.trim().split('\n');
      seenBy[rt.name] = { opened, rules: devicesHierarchy ? devicesList(pid) : 'no v1 devices hierarchy' };
      t.equal(under(rt, bundle, id, ['delete', '--force', '%ID%']).status, 0, `${rt.name}: delete --force`);
    }
    const differs = devicesHierarchy ? undefined : V2_DIFFERS[label];
    if (differs) {
      differsOnPurpose(t, 'device-deny-partial-access');
      const [ours, theirs] = [seenBy.tsrun, seenBy.reference].map((s) => (s as { opened: string[] }).opened);
      t.ok(ours.includes(`${differs}: refused`), `tsrun refuses ${differs}, as cgroup v1 does`);
      t.ok(theirs.includes(`${differs}: let through`), `runc's filter lets ${differs} through`);
      const others = (list: string[]) => list.filter((o) => !o.startsWith(`${differs}:`));
      t.same(others(ours), others(theirs), 'every other open as under runc');
    } else t.same(seenBy.tsrun, seenBy.reference, 'tsrun as runc');
  });
}

t.test('a node in linux.devices whose mknod the rules deny: runc makes it, tsrun refuses naming it', async (t) => {
  differsOnPurpose(t, 'device-rules-before-setup');
  const bundle = makeBundle(
    t,
    (c) => {
      c.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666 }];
      c.linux!.resources = { devices: [allowAll, { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }] };
    },
    ['/bin/sh', '-c', 'exec 3</dev/fuse'],
  );
  const id = uniqueId('devmknod');
  cleanupBoth(t, bundle, id);
  const [reference, tsrun] = RUNTIMES.map((rt) => under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%']));
  t.equal(reference.status, 1, 'runc makes the node before it applies the rules; the open is refused');
  t.match(reference.stderr, /Operation not permitted/);
  t.equal(tsrun.status, 1, 'tsrun applies the rules first: the mknod is refused');
  t.match(tsrun.stderr, /: linux\.devices\[0\]: mknod rootfs\/dev\/fuse: operation not permitted\n$/);
  t.same(leftovers({ ...bundle, root: `${bundle.root}-tsrun` }, `${id}-tsrun`), [], 'nothing left');
});

t.test(
  'a device taken out of a wider allowed rule: refused under both (the kernel would keep the wider one)',
  async (t) => {
    const bundle = makeBundle(
      t,
      (c) =>
        (c.linux!.resources = {
          devices: [
            denyAll,
            { allow: true, type: 'c', access: 'rwm' },
            { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
          ],
        }),
      ['/bin/true'],
    );
    const id = uniqueId('devhole');
    cleanupBoth(t, bundle, id);
    const [reference, tsrun] = RUNTIMES.map((rt) => under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%']));
    t.not(reference.status, 0, `runc refuses it: ${reference.stderr.trim()}`);
    t.equal(tsrun.status, 1);
    t.match(tsrun.stderr, /linux\.resources\.devices: "c 1:3 w" takes access out of the wider "c \*:\* rwm"/);
    t.same(leftovers({ ...bundle, root: `${bundle.root}-tsrun` }, `${id}-tsrun`), [], 'nothing left');
  },
);
