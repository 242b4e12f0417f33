/**
 * Issue 15: namespace combinations, under runc and tsrun.  Each
 * combination of new namespaces (always a mount namespace: the ones
 * without are namespaces.test.ts's), with and without a user namespace,
 * and a user namespace with a network namespace joined by path, runs a
 * probe that says, for every namespace type, whether the process shares
 * the host's, and what its uid map, hostname and interfaces are.  Both
 * runtimes must run each the same way.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import t from 'tap';
import { type Config, type NamespaceType } from '../../src/lib/config';
import { IS_ROOT, makeBundle, uniqueId } from '../helpers';
import { cleanupBoth, referenceInstalled, seen, underBoth } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const TYPES: Array<[NamespaceType, string]> = [
  ['pid', 'pid'],
  ['network', 'net'],
  ['ipc', 'ipc'],
  ['uts', 'uts'],
  ['mount', 'mnt'],
  ['cgroup', 'cgroup'],
  ['user', 'user'],
];
const host = Object.fromEntries(TYPES.map(([, file]) => [file, fs.readlinkSync(`/proc/self/ns/${file}`)]));

/** For each type: "host" or "own"; then the uid map, the hostname and the interfaces of a network namespace of its own. */
const PROBE = TYPES.map(
  ([, file]) =>
    `[ "$(readlink /proc/self/ns/${file})" = "${host[file]}" ] && echo "${file} host" || echo "${file} own"`,
)
  // The host's interfaces come and go with other tests: listed only in a namespace of the container's.
  .concat([
    'head -1 /proc/self/uid_map | tr -s " "',
    'hostname',
    `[ "$(readlink /proc/self/ns/net)" = "${host.net}" ] || ip -o link | cut -d: -f2 | tr -d " " | tr "\\n" " "; echo`,
  ])
  .join('; ');

const COMBINATIONS: NamespaceType[][] = [
  ['mount'],
  ['mount', 'pid'],
  ['mount', 'uts'],
  ['mount', 'ipc'],
  ['mount', 'network'],
  ['mount', 'cgroup'],
  ['mount', 'pid', 'network', 'ipc', 'uts'],
  ['mount', 'pid', 'network', 'ipc', 'uts', 'cgroup'],
  // procfs and mqueue need pid and IPC namespaces that the user namespace owns (runc fails as tsrun does without them).
  ['mount', 'user', 'pid', 'ipc'],
  ['mount', 'user', 'pid', 'ipc', 'uts'],
  ['mount', 'user', 'pid', 'ipc', 'network'],
  ['mount', 'user', 'pid', 'ipc', 'cgroup'],
  ['mount', 'user', 'pid', 'network', 'ipc', 'uts', 'cgroup'],
];

function withNamespaces(types: NamespaceType[]): (c: Config) => void {
  return (c) => {
    c.linux!.namespaces = types.map((type) => ({ type }));
    if (types.includes('user')) {
      c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    }
    if (!types.includes('uts')) delete c.hostname;
    // sysfs belongs to the network namespace's owner: without one of its own, bind the host's (as runc spec --rootless does).
    if (types.includes('user') && !types.includes('network')) {
      c.mounts = c.mounts!.map((m) =>
        m.destination === '/sys'
          ? { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }
          : m,
      );
    }
  };
}

function ownedByMappedRoot(dir: string, rootfs: string): void {
  spawnSync('chown', ['-R', '100000:100000', rootfs]);
  fs.chmodSync(dir, 0o755);
}

for (const types of COMBINATIONS) {
  t.test(`new ${types.join(', ')}: run as under the reference`, async (t) => {
    const bundle = makeBundle(t, withNamespaces(types), ['/bin/sh', '-c', PROBE]);
    if (types.includes('user')) ownedByMappedRoot(bundle.dir, bundle.rootfs);
    const id = uniqueId('nscombo');
    cleanupBoth(t, bundle, id);
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.equal(r.tsrun.status, 0, `tsrun runs it: ${r.tsrun.stderr}`);
    t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.reference.stderr}`);
    for (const [type, file] of TYPES)
      t.match(
        r.tsrun.stdout,
        `${file} ${types.includes(type) ? 'own' : 'host'}\n`,
        `${file}: ${types.includes(type) ? 'its own' : "the host's"}`,
      );
  });
}

t.test('a new user namespace with a network namespace joined by path: run as under the reference', async (t) => {
  const netns = `tsrun-nsc${process.pid % 100000}`;
  t.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0, 'a persistent network namespace');
  t.teardown(() => {
    spawnSync('ip', ['netns', 'delete', netns]);
  });
  const bundle = makeBundle(
    t,
    (c) => {
      withNamespaces(['mount', 'user', 'pid', 'ipc'])(c);
      c.linux!.namespaces!.push({ type: 'network', path: `/run/netns/${netns}` });
      // A joined network namespace is the host user namespace's: its sysfs cannot be mounted from ours.
      c.mounts = c.mounts!.map((m) =>
        m.destination === '/sys'
          ? { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }
          : m,
      );
    },
    ['/bin/sh', '-c', PROBE],
  );
  ownedByMappedRoot(bundle.dir, bundle.rootfs);
  const id = uniqueId('nscjoin');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.equal(r.tsrun.status, 0, `tsrun runs it: ${r.tsrun.stderr}`);
  t.same(seen(r.tsrun), seen(r.reference), `as the reference: ${r.reference.stderr}`);
  t.match(r.tsrun.stdout, 'net own\n', "the joined namespace, not the host's");
  t.match(r.tsrun.stdout, /^lo $/m, 'with its own interfaces (lo only)');
});
