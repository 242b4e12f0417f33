/**
 * Issue 15, item 1: seccomp profiles older than the kernel, under runc and
 * tsrun side by side (test/compat-helpers.ts).
 *
 * The profile is Docker's default (spec-fixtures/seccomp/docker-default.json:
 * default action ERRNO) without the syscalls of Linux 5.3 and later, as
 * profiles written before them are.  tsrun failed every create with it
 * ("exec /bin/sh: operation not permitted"): its helper checked the
 * program with faccessat2 under the container's filter, which answered
 * EPERM.  Now, as runc:
 *  - run and exec work, with and without no_new_privs;
 *  - a syscall the profile does not name gets the default errno if it is
 *    older than the newest one the profile names, and ENOSYS if newer, so
 *    libc falls back (runc's ENOSYS stub; x86_64 and x32 each by their own
 *    numbers);
 *  - with a default action that lets calls through, no stub: the kernel's
 *    own answer, the same under both.
 * Every answer is compared with runc's, not only with what we expect.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, leftovers, makeBundle, PROJECT_ROOT, uniqueId } from '../helpers';
import {
  cleanupBoth,
  idFor,
  referenceInstalled,
  RUNTIMES,
  seen,
  under,
  underBoth,
  differsOnPurpose,
} from '../compat-helpers';

if (!IS_ROOT) {
  t.plan(0, 'compat tests need root');
  process.exit(0);
}
t.ok(referenceInstalled(), 'the reference runtime is installed (scripts/setup.sh --engines)');

/** Linux 5.3 and later, on x86_64: clone3 (435) onwards. */
const NEWER = `clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2 mount_setattr quotactl_fd
  landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret process_mrelease futex_waitv
  set_mempolicy_home_node cachestat fchmodat2 map_shadow_stack futex_wake futex_wait futex_requeue statmount listmount
  lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal setxattrat getxattrat listxattrat removexattrat open_tree_attr`.split(
  /\s+/,
);

function oldProfile(): any {
  const profile = JSON.parse(
    fs.readFileSync(path.join(PROJECT_ROOT, 'spec-fixtures', 'seccomp', 'docker-default.json'), 'utf8'),
  );
  for (const rule of profile.syscalls) rule.names = rule.names.filter((n: string) => !NEWER.includes(n));
  profile.syscalls = profile.syscalls.filter((rule: { names: string[] }) => rule.names.length);
  return profile;
}

/**
 * Raw syscalls and what answers them, on x86_64: syslog (103) and sysfs
 * (139) are old and unnamed (EPERM); faccessat2 (439) and beyond are newer
 * than anything named (ENOSYS); the same through the x32 numbers.
 */
const PROBES = [103, 139, 439, 460, 1000, 0x40000000 + 103, 0x40000000 + 439, 0x40000000 + 1000];
const PROBE_SCRIPT = `for n in ${PROBES.join(' ')}; do /bin/checker syscall $n; echo; done`;

function answers(stdout: string): Record<number, string> {
  return Object.fromEntries(
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        const r = JSON.parse(l);
        return [r.nr, r.errno ? r.code : `ret ${r.ret}`];
      }),
  );
}

/** PROBES under both runtimes with this filter: tsrun's answers, once checked to be the reference's. */
function probeUnderBoth(t: any, seccomp: unknown, nnp: boolean): Record<number, string> {
  const bundle = makeBundle(
    t,
    (c) => {
      c.process!.noNewPrivileges = nnp;
      c.linux!.seccomp = seccomp as NonNullable<typeof c.linux>['seccomp'];
    },
    ['/bin/sh', '-c', PROBE_SCRIPT],
  );
  const id = uniqueId('probe');
  cleanupBoth(t, bundle, id);
  const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
  t.equal(r.tsrun.status, 0, r.tsrun.stderr);
  t.same(answers(r.tsrun.stdout), answers(r.reference.stdout), "every answer is the reference runtime's");
  return answers(r.tsrun.stdout);
}

for (const nnp of [false, true]) {
  const label = nnp ? 'no_new_privs' : 'without no_new_privs';

  t.test(`an old profile (${label}): run works under both`, async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        c.process!.noNewPrivileges = nnp;
        c.linux!.seccomp = oldProfile();
      },
      ['/bin/sh', '-c', 'echo ran-ok'],
    );
    const id = uniqueId('oldprof');
    cleanupBoth(t, bundle, id);
    const r = underBoth(bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.same(seen(r.tsrun), seen(r.reference), `tsrun as the reference: ${r.tsrun.stderr}`);
    t.same(seen(r.tsrun), { status: 0, stdout: 'ran-ok\n' });
    for (const rt of RUNTIMES) t.same(leftovers(bundle, idFor(rt, id)), [], `${rt.name}: nothing left`);
  });

  t.test(`an old profile (${label}): exec works under both`, async (t) => {
    const bundle = makeBundle(
      t,
      (c) => {
        c.process!.noNewPrivileges = nnp;
        c.linux!.seccomp = oldProfile();
      },
      ['/bin/sleep', '1000'],
    );
    const id = uniqueId('oldprofx');
    cleanupBoth(t, bundle, id);
    for (const rt of RUNTIMES)
      t.equal(
        under(rt, bundle, id, ['run', '--detach', '-b', bundle.dir, '%ID%']).status,
        0,
        `${rt.name}: run --detach`,
      );
    const r = underBoth(bundle, id, ['exec', '%ID%', '/bin/sh', '-c', 'echo exec-ok']);
    t.same(seen(r.tsrun), seen(r.reference), `tsrun as the reference: ${r.tsrun.stderr}`);
    t.same(seen(r.tsrun), { status: 0, stdout: 'exec-ok\n' });
  });

  t.test(
    `an old profile (${label}): unnamed syscalls get the default errno, newer ones ENOSYS, as in runc`,
    async (t) => {
      const a = probeUnderBoth(t, oldProfile(), nnp);
      t.same(
        [a[103], a[139], a[439], a[460], a[1000]],
        ['EPERM', 'EPERM', 'ENOSYS', 'ENOSYS', 'ENOSYS'],
        'x86_64: EPERM below the newest named, ENOSYS above',
      );
      t.equal(a[0x40000000 + 1000], 'ENOSYS', 'x32: above its own newest named, ENOSYS');
    },
  );
}

t.test('a default that lets calls through: no stub, the kernel answers, as in runc', async (t) => {
  const a = probeUnderBoth(
    t,
    { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['syslog'], action: 'SCMP_ACT_ERRNO' }] },
    false,
  );
  t.equal(a[103], 'EPERM', 'the named rule');
  t.not(a[439], 'ENOSYS', 'faccessat2 reaches the kernel');
});

t.test(
  'no_new_privs: execve is all the helper does under the filter, so a profile need allow nothing of the runtime',
  async (t) => {
    differsOnPurpose(t, 'seccomp-late-load');
    // Only what the static checker needs after execve.  runc 1.1.5 fails this
    // one ("container process is already dead": its init reads the exec fifo
    // and more after loading the filter); tsrun differs on purpose, as crun
    // does, by loading the filter last.  Without no_new_privs the filter must
    // come before the capabilities drop, as in runc, and this cannot work.
    const minimal = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['execve', 'arch_prctl', 'set_tid_address', 'exit_group', 'exit'], action: 'SCMP_ACT_ALLOW' },
      ],
    };
    const bundle = makeBundle(
      t,
      (c) => {
        c.process!.noNewPrivileges = true;
        c.linux!.seccomp = minimal;
      },
      ['/bin/checker', 'exit', '7'],
    );
    const id = uniqueId('minprof');
    cleanupBoth(t, bundle, id);
    const r = under(RUNTIMES[1], bundle, id, ['run', '-b', bundle.dir, '%ID%']);
    t.equal(r.status, 7, `run: the program ran and exited 7: ${r.stderr}`);
    const running = makeBundle(
      t,
      (c) => {
        c.process!.noNewPrivileges = true;
        // The container that waits for the exec needs its sleep too; the exec'd program gets the same filter.
        c.linux!.seccomp = {
          ...minimal,
          syscalls: [{ ...minimal.syscalls[0], names: [...minimal.syscalls[0].names, 'nanosleep', 'clock_nanosleep'] }],
        };
      },
      ['/bin/checker', 'sleep', '1000'],
    );
    const rid = uniqueId('minprofx');
    cleanupBoth(t, running, rid);
    t.equal(under(RUNTIMES[1], running, rid, ['run', '--detach', '-b', running.dir, '%ID%']).status, 0, 'run --detach');
    t.equal(
      under(RUNTIMES[1], running, rid, ['exec', '%ID%', '/bin/checker', 'exit', '5']).status,
      5,
      'exec: the program ran and exited 5',
    );
  },
);
