/**
 * Issue 15: configs that nobody here wrote.  The default configs of
 * `runc spec`, `runc spec --rootless`, `crun spec`, containerd's
 * `ctr oci spec` and `tsrun spec` each run the in-container checker under
 * the reference and under tsrun, and everything the checker reports is
 * compared: ids, groups, umask, cwd, env, capabilities, rlimits, signals,
 * no_new_privs, seccomp, oom score, scheduler, I/O priority, personality,
 * affinity, memory policy, terminal, devices, every mount with its mount
 * and superblock options (as a set), and the cgroups.  Left out: what differs per run
 * (namespace inode numbers, the kernel release) and the process's stdio
 * (pipes of its own under both, compared in process-setup).
 * This is how tsrun was found mounting a hybrid host's cgroup2 tree and
 * mounting read-only filesystems with a writable superblock.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { IS_ROOT, makeBundle, tempDir, TSRUN, uniqueId } from '../helpers';
import { comparableReport, idFor, referenceInstalled, RUNTIMES, under } from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

/** Each generator writes config.json into `dir` (or prints it). */
const GENERATORS: Array<[string, string[], 'file' | 'stdout']> = [
  ['runc spec', ['/usr/sbin/runc', 'spec'], 'file'],
  ['runc spec --rootless', ['/usr/sbin/runc', 'spec', '--rootless'], 'file'],
  ['crun spec', ['/usr/bin/crun', 'spec'], 'file'],
  ['ctr oci spec', ['/usr/bin/ctr', 'oci', 'spec'], 'stdout'],
  ['tsrun spec', [TSRUN, 'spec'], 'file'],
];

function generated(t: Parameters<typeof tempDir>[0], argv: string[], how: 'file' | 'stdout'): Config | undefined {
  if (!fs.existsSync(argv[0])) return undefined;
  const dir = tempDir(t, 'tsrun-gen-');
  const r = spawnSync(argv[0], argv.slice(1), { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return JSON.parse(how === 'stdout' ? r.stdout : fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
}

for (const [label, argv, how] of GENERATORS) {
  t.test(`${label}: the checker sees the same container under both`, async (t) => {
    const base = generated(t, argv, how);
    if (!base) {
      t.comment(`${argv[0]} is not installed`);
      return;
    }
    const reports: Record<string, Record<string, unknown>> = {};
    for (const rt of RUNTIMES) {
      const id = uniqueId('gen');
      const cgroupParent = `tsrun-compat-gen-${process.pid}`;
      const bundle = makeBundle(t, (c) => {
        Object.assign(c, JSON.parse(JSON.stringify(base)));
        c.root = { ...base.root, path: 'rootfs' };
        c.process = { ...base.process!, args: ['/bin/checker'], terminal: false };
        // ctr's spec names one cgroup for every container: one each here.
        if (base.linux?.cgroupsPath) c.linux!.cgroupsPath = `/${cgroupParent}/${rt.name}-${id}`;
      });
      t.teardown(() => {
        under(rt, bundle, id, ['delete', '--force', '%ID%']);
        for (const h of fs.readdirSync('/sys/fs/cgroup')) {
          const dir = path.join('/sys/fs/cgroup', h, cgroupParent);
          try {
            fs.rmdirSync(dir);
          } catch {
            // not there, or another runtime's child still in it
          }
        }
      });
      const r = under(rt, bundle, id, ['run', '-b', bundle.dir, '%ID%']);
      t.equal(r.status, 0, `${rt.name}: runs: ${r.stderr}`);
      if (r.status === 0)
        reports[rt.name] = comparableReport(JSON.parse(r.stdout), [idFor(rt, id), `${rt.name}-${id}`, bundle.dir]);
    }
    if (!reports.tsrun || !reports.reference) return;
    for (const key of Object.keys({ ...reports.reference, ...reports.tsrun })) {
      t.same(reports.tsrun[key], reports.reference[key], `${key}: as under the reference`);
    }
  });
}
