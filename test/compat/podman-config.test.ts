/**
 * Issue 15: podman's own configs as compat input.  podman (4.3, Debian)
 * creates containers with a few common flag sets, with the reference
 * runtime behind a wrapper that keeps a copy of each config.json it is
 * given.  Each copy then runs the in-container checker under the
 * reference and under tsrun, with podman's mounts (its /etc/hosts,
 * resolv.conf, .containerenv...), seccomp profile, capabilities, rlimits,
 * masked paths and user namespace, on the fixture rootfs in place of
 * podman's overlay, and everything the checker reports is compared, as
 * generated-configs does for the `spec` generators.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { IS_ROOT, makeBundle, runCommand, type RunResult, uniqueId } from '../helpers';
import {
  busyboxArchive,
  IMAGE,
  pathsMadeAfter,
  PODMAN_SYSTEM_PATHS,
  podmanStorageFlags,
  podmanTestConf,
  podmanTurn,
  removeCgroupTree,
} from '../engine-helpers';
import {
  comparableReport,
  differsOnPurpose,
  idFor,
  REFERENCE,
  referenceInstalled,
  RUNTIMES,
  under,
} from '../compat-helpers';

if (!IS_ROOT || runCommand(['podman', '--version']).status !== 0) {
  t.plan(0, 'needs root and podman (scripts/setup.sh --engines installs it)');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-podcfg-'));
const captured = path.join(work, 'captured');
fs.mkdirSync(captured);
const cgroupParent = `/tsrun-podcfg-${process.pid}`;
// The reference, behind a wrapper that keeps each create's config.json (named by the container id, the last argument).
const wrapper = path.join(work, 'reference-capturing');
fs.writeFileSync(
  wrapper,
  `#!/bin/sh
prev=''
for a in "$@"; do
  if [ "$prev" = --bundle ]; then bundle="$a"; fi
  prev="$a"; last="$a"
done
if [ -n "$bundle" ]; then cp "$bundle/config.json" '${captured}'/"$last".json; fi
exec '${REFERENCE.bin}' "$@"
`,
  { mode: 0o755 },
);
const conf = podmanTestConf(path.join(work, 'containers.conf'));
const ENV = { CONTAINERS_CONF: conf };
const base = ['podman', ...podmanStorageFlags(work), '--runtime', wrapper];
const podman = (args: string[]): RunResult =>
  runCommand([...base, ...args], { env: ENV, timeoutMs: 120_000, cwd: work });

const endTurn = podmanTurn();
const removeMadePaths = pathsMadeAfter([...PODMAN_SYSTEM_PATHS, '/run/runc']);
t.teardown(() => {
  podman(['rm', '--all', '--force', '--time', '0']);
  runCommand([...base, 'system', 'reset', '--force'], { env: ENV, cwd: work });
  removeMadePaths();
  endTurn();
  fs.rmSync(work, { recursive: true, force: true });
  const left = removeCgroupTree(cgroupParent);
  if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
});

/** podman flag sets whose configs are compared; `userns`: the rootfs must belong to the mapped root. */
const FLAG_SETS: Array<{ label: string; flags: string[]; userns?: number }> = [
  { label: 'podman run (defaults)', flags: [] },
  {
    label:
      'podman run --user --read-only --cap-drop ALL --security-opt no-new-privileges --tmpfs --pids-limit --memory',
    flags: [
      '--user',
      '1000:1000',
      '--read-only',
      '--cap-drop',
      'ALL',
      '--cap-add',
      'NET_BIND_SERVICE',
      '--security-opt',
      'no-new-privileges',
      '--tmpfs',
      '/scratch',
      '--pids-limit',
      '50',
      '--memory',
      '64m',
      '--env',
      'FROM_PODMAN=1',
      '--workdir',
      '/tmp',
    ],
  },
  { label: 'podman run --privileged', flags: ['--privileged'] },
  {
    label: 'podman run --uidmap (a user namespace)',
    flags: ['--uidmap', '0:200000:65536', '--gidmap', '0:200000:65536'],
    userns: 200000,
  },
];

t.test('podman loads the fixture image', async (t) => {
  const archive = await busyboxArchive(path.join(work, 'busybox.tar'));
  const r = podman(['load', '--input', archive]);
  t.equal(r.status, 0, r.stderr);
});

for (const set of FLAG_SETS) {
  t.test(`${set.label}: the checker sees the same container under both`, async (t) => {
    const name = `podcfg-${uniqueId('p')}`;
    const c = podman([
      'create',
      '--name',
      name,
      '--network',
      'none',
      '--cgroup-parent',
      cgroupParent,
      ...set.flags,
      IMAGE,
      '/bin/checker',
    ]);
    t.equal(c.status, 0, `podman create: ${c.stderr}`);
    const id = c.stdout.trim();
    // init makes the runtime create the container: the wrapper keeps its config.
    t.equal(podman(['init', name]).status, 0, 'podman init');
    const file = path.join(captured, `${id}.json`);
    t.ok(fs.existsSync(file), "the reference was given podman's config");
    if (!fs.existsSync(file)) return;
    const podmanConfig = JSON.parse(fs.readFileSync(file, 'utf8')) as Config;
    const reports: Record<string, Record<string, unknown>> = {};
    for (const rt of RUNTIMES) {
      const cid = uniqueId('podcfg');
      const bundle = makeBundle(t, (cfg) => {
        Object.assign(cfg, JSON.parse(JSON.stringify(podmanConfig)));
        cfg.root = { ...podmanConfig.root, path: 'rootfs' };
        cfg.process = { ...podmanConfig.process!, args: ['/bin/checker'], terminal: false };
        cfg.linux!.cgroupsPath = `${cgroupParent}/${rt.name}-${cid}`;
      });
      if (set.userns) {
        spawnSync('chown', ['-R', `${set.userns}:${set.userns}`, bundle.rootfs]);
        fs.chmodSync(bundle.dir, 0o755);
      }
      t.teardown(() => {
        under(rt, bundle, cid, ['delete', '--force', '%ID%']);
      });
      const r = under(rt, bundle, cid, ['run', '-b', bundle.dir, '%ID%']);
      t.equal(r.status, 0, `${rt.name}: runs: ${r.stderr}`);
      if (r.status === 0)
        reports[rt.name] = comparableReport(JSON.parse(r.stdout), [idFor(rt, cid), `${rt.name}-${cid}`, bundle.dir]);
    }
    if (!reports.tsrun || !reports.reference) return;
    if (set.userns) {
      // runc sets up as the host's gid 0, unmapped here: /dev/mqueue's root shows as group 65534.
      differsOnPurpose(t, 'userns-setup-group');
      const mqueue = (reports.reference.devices as Array<{ path: string; gid: number }>).find(
        (d) => d.path === '/dev/mqueue',
      );
      t.equal(mqueue?.gid, 65534, "the reference's /dev/mqueue belongs to the unmapped group");
      if (mqueue) mqueue.gid = 0;
    }
    for (const key of Object.keys({ ...reports.reference, ...reports.tsrun })) {
      t.same(reports.tsrun[key], reports.reference[key], `${key}: as under the reference`);
    }
  });
}
