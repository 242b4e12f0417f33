/**
 * AppArmor and SELinux: neither is active on this kernel, so profiles and
 * labels are ignored as runc ignores them, and --debug says so.  (Where a
 * module is active, tsrun refuses instead; that host is not this one.)
 */
import t from 'tap';
import { hostLsm } from '../../src/lib/lsm';
import { cleanupContainer, IS_ROOT, leftovers, makeBundle, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

t.test('profiles and labels are ignored where the host has no such module', async (t) => {
  if (hostLsm.apparmor() || hostLsm.selinux()) {
    t.plan(0, 'an LSM is active here: tsrun refuses instead');
    return;
  }
  const bundle = makeBundle(
    t,
    (c) => {
      c.process!.apparmorProfile = 'docker-default';
      c.process!.selinuxLabel = 'system_u:system_r:container_t:s0:c1,c2';
      c.linux!.mountLabel = 'system_u:object_r:container_file_t:s0:c1,c2';
    },
    ['sleep', '1000'],
  );
  const id = uniqueId('lsm');
  cleanupContainer(t, bundle.root, id);
  const r = tsrun(bundle.root, ['--debug', 'run', '-d', '-b', bundle.dir, id]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /process\.apparmorProfile: "docker-default" ignored: AppArmor is not enabled on this host/);
  t.match(r.stderr, /process\.selinuxLabel: .* ignored: SELinux is not enabled/);
  t.match(r.stderr, /linux\.mountLabel: .* ignored: SELinux is not enabled/);
  const quiet = tsrun(bundle.root, [
    'exec',
    '--apparmor',
    'unconfined',
    '--process-label',
    'system_u:system_r:spc_t:s0',
    id,
    'echo',
    'ok',
  ]);
  t.equal(quiet.status, 0, quiet.stderr);
  t.equal(quiet.stdout, 'ok\n');
  t.equal(quiet.stderr, '', 'silent without --debug');
  const loud = tsrun(bundle.root, ['--debug', 'exec', '--apparmor', 'unconfined', id, 'true']);
  t.match(loud.stderr, /process\.apparmorProfile: "unconfined" ignored/);
  t.equal(tsrun(bundle.root, ['delete', '-f', id]).status, 0);
  t.same(leftovers(bundle, id), []);
});

t.test('features reports neither as enabled', async (t) => {
  const f = JSON.parse(tsrun('/tmp', ['features']).stdout);
  t.same(f.linux.apparmor, { enabled: false });
  t.same(f.linux.selinux, { enabled: false });
});
