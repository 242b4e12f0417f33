/**
 * rlimits and oom_score_adj are applied where runc applies them: rlimits
 * by the parent with prlimit(2) before the user switch (so a user
 * namespace does not decide what may be raised), oom_score_adj before any
 * namespace exists.  For run and exec.
 */
import * as fs from 'fs';
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { cleanupContainer, IS_ROOT, leftovers, makeBundle, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

const hostNofileHard = Number(fs.readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/)![1]);
const CAP_SYS_RESOURCE = 24;
const hostHasSysResource =
  (BigInt('0x' + fs.readFileSync('/proc/self/status', 'utf8').match(/CapBnd:\s+(\w+)/)![1]) >>
    BigInt(CAP_SYS_RESOURCE)) &
  1n;

/** A user namespace (the caller makes the bundle dir reachable for the remapped root). */
const userns = (c: Config): void => {
  c.linux!.namespaces!.push({ type: 'user' });
  c.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
};

const limitsScript = "grep -E 'open files|core file' /proc/self/limits; cat /proc/self/oom_score_adj; id -u";

for (const [name, mutate] of [
  ['no user namespace', (_c: Config) => {}],
  ['a user namespace', userns],
] as const) {
  t.test(`rlimits and oom_score_adj, run and exec, ${name}`, async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        mutate(c);
        c.process!.user = { uid: 1000, gid: 1000 };
        c.process!.rlimits = [
          { type: 'RLIMIT_NOFILE', soft: 123, hard: 456 },
          { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
        ];
        c.process!.oomScoreAdj = 321;
      },
      ['sh', '-c', `${limitsScript}; sleep 1000`],
    );
    fs.chmodSync(bundle.dir, 0o755);
    const id = uniqueId('order');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]);
    t.equal(r.status, 0, r.stderr);
    const e = tsrun(bundle.root, ['exec', id, 'sh', '-c', limitsScript]);
    t.equal(e.status, 0, e.stderr);
    for (const text of [e.stdout]) {
      t.match(text, /Max open files\s+123\s+456/, 'nofile lowered for a non-root user');
      t.match(text, /Max core file size\s+0\s+0/);
      t.match(text, /^321$/m, 'oom_score_adj');
      t.match(text, /^1000$/m);
    }
    const init = tsrun(bundle.root, ['state', id]);
    const pid = JSON.parse(init.stdout).pid;
    t.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max open files\s+123\s+456/, 'the init too');
    t.equal(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(), '321');
    t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
    t.same(leftovers(bundle, id), []);
  });
}

t.test("a hard limit above the host's is judged by the host's capabilities, also in a user namespace", async (t) => {
  if (hostHasSysResource) {
    t.plan(0, 'this host grants CAP_SYS_RESOURCE: raising is allowed here');
    return;
  }
  for (const mutate of [(_c: Config) => {}, userns]) {
    const bundle = makeBundle(
      t,
      (c) => {
        mutate(c);
        c.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: hostNofileHard + 1000 }];
      },
      ['true'],
    );
    fs.chmodSync(bundle.dir, 0o755);
    const id = uniqueId('order');
    const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.not(r.status, 0);
    t.match(
      r.stderr,
      new RegExp(
        `^tsrun: run \\S+: process\\.rlimits\\[0\\]: set RLIMIT_NOFILE to 1024/${hostNofileHard + 1000}: operation not permitted\\n$`,
      ),
    );
    t.same(leftovers(bundle, id), []);
  }
});

t.test("lowering oom_score_adj takes the host's CAP_SYS_RESOURCE", async (t) => {
  if (hostHasSysResource) {
    t.plan(0, 'this host grants CAP_SYS_RESOURCE');
    return;
  }
  const bundle = makeBundle(
    t,
    (c) => {
      c.process!.oomScoreAdj = -500;
    },
    ['true'],
  );
  const id = uniqueId('order');
  const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  t.not(r.status, 0);
  t.match(r.stderr, /set oom_score_adj to -500: permission denied/);
  t.same(leftovers(bundle, id), []);
});
