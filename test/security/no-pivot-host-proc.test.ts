/**
 * Issue 14, finding 10: with --no-pivot the host's /proc stayed reachable.
 * MS_MOVE of the rootfs over "/" and chroot leave the host's mounts beneath
 * the rootfs, and the kernel lets a new user namespace mount procfs (or
 * sysfs) wherever a fully visible one exists in its mount namespace: the
 * container's own /proc is masked, the host's was not.  So a process of
 * the container with a user, mount and pid namespace of its own (any
 * process may make one; Docker's default capabilities give CAP_SETFCAP,
 * which mapping root needs) mounted an unmasked procfs.  runc's msMoveRoot
 * detaches such mounts first, and so does tsrun now.
 *
 * For run and exec, with and without --no-pivot, and with a user
 * namespace of the container's own (the host's mounts are locked there:
 * covered instead of detached): the nested proc and sysfs mounts are
 * refused, as they are under runc, and the container still sees its own
 * /proc.
 */
import t from 'tap';
import { type Config } from '../../src/lib/config';
import { defaultSpec } from '../../src/lib/spec-default';
import { cleanupContainer, IS_ROOT, leftovers, makeBundle, tsrun, uniqueId } from '../helpers';
import { openBundleToUserns, withUserns } from '../security-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

/** Docker's default capability set. */
const DOCKER_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * A new user, mount and pid namespace (and network, for sysfs) inside the
 * container, then a mount of a fresh procfs and sysfs, with mount's own
 * error on stdout: only the kernel's EPERM counts as refused.
 */
const PROBE =
  'mkdir -p /tmp/p /tmp/s; ' +
  'unshare -U -r -m -p -f sh -c "mount -t proc proc /tmp/p 2>&1 && echo PROC-MOUNTED || echo proc-refused"; ' +
  'unshare -U -r -m -n sh -c "mount -t sysfs sysfs /tmp/s 2>&1 && echo SYSFS-MOUNTED || echo sysfs-refused"; ' +
  'head -1 /proc/self/status';

/** The bundle as `tsrun spec` makes it (masked and read-only paths), with Docker's capabilities and a writable root. */
function specLike(userns: boolean): (c: Config) => void {
  return (c) => {
    const spec = defaultSpec({ rootless: false, cgroupNamespace: false });
    c.linux!.maskedPaths = spec.linux!.maskedPaths;
    c.linux!.readonlyPaths = spec.linux!.readonlyPaths;
    c.process!.capabilities = { bounding: DOCKER_CAPS, effective: DOCKER_CAPS, permitted: DOCKER_CAPS };
    if (userns) withUserns(c);
  };
}

function checkRefused(t: any, out: string, what: string): void {
  t.match(out, /permission denied.*\nproc-refused/i, `${what}: a new procfs is refused, by the kernel (EPERM)`);
  t.notMatch(out, /PROC-MOUNTED/, `${what}: no procfs mounted`);
  t.match(out, /permission denied.*\nsysfs-refused/i, `${what}: a new sysfs is refused, by the kernel (EPERM)`);
  t.notMatch(out, /SYSFS-MOUNTED/, `${what}: no sysfs mounted`);
  t.match(out, /Name:\s+head/, `${what}: the container's own /proc works`);
}

for (const userns of [false, true]) {
  for (const noPivot of [false, true]) {
    const flags = noPivot ? ['--no-pivot'] : [];
    const label = `${noPivot ? '--no-pivot' : 'pivot_root'}${userns ? ', own user namespace' : ''}`;
    t.test(`${label}: a nested user namespace cannot mount procfs or sysfs (run and exec)`, async (t) => {
      const bundle = makeBundle(t, specLike(userns), ['/bin/sh', '-c', PROBE]);
      if (userns) openBundleToUserns(bundle);
      const id = uniqueId('nopivot');
      cleanupContainer(t, bundle.root, id);
      const r = tsrun(bundle.root, ['run', ...flags, '-b', bundle.dir, id]);
      t.equal(r.status, 0, `run: ${r.stderr}`);
      checkRefused(t, r.stdout, `run ${label}`);
      t.same(leftovers(bundle, id), []);

      const running = makeBundle(t, specLike(userns), ['/bin/sleep', '1000']);
      if (userns) openBundleToUserns(running);
      const rid = uniqueId('nopivot-exec');
      cleanupContainer(t, running.root, rid);
      t.equal(tsrun(running.root, ['run', '--detach', ...flags, '-b', running.dir, rid]).status, 0);
      const e = tsrun(running.root, ['exec', rid, '/bin/sh', '-c', PROBE]);
      t.equal(e.status, 0, `exec: ${e.stderr}`);
      checkRefused(t, e.stdout, `exec ${label}`);
      t.equal(tsrun(running.root, ['delete', '--force', rid]).status, 0);
      t.same(leftovers(running, rid), []);
    });
  }
}
