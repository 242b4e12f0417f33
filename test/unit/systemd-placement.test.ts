/**
 * SystemdPlacement's clean-up (src/lib/cgroup/systemd.ts) with a systemd
 * that answers as told, and a placement that records what it was asked:
 * what systemd leaves is removed whatever the stop said, and the stop's
 * own error is the one reported.  No systemd, no root.
 */
import t from 'tap';
import { DBusError } from '../../src/lib/dbus/client';
import { type Message } from '../../src/lib/dbus/wire';
import { DEFAULT_DEVICE_RULES } from '../../src/lib/cgroup/devices';
import { type Placement } from '../../src/lib/cgroup/manager';
import { Systemd, SystemdPlacement } from '../../src/lib/cgroup/systemd';

/** A systemd whose unit is active, and whose StopUnit fails with `stopError` (or succeeds). */
class ToldSystemd extends Systemd {
  asked: string[] = [];
  constructor(private readonly stopError?: Error) {
    super('/nonexistent');
  }
  activeState(): string | null {
    return 'active';
  }
  job(member: string): string {
    this.asked.push(member);
    if (this.stopError) throw this.stopError;
    return 'done';
  }
  call(member: string): Message {
    this.asked.push(member);
    return { body: [] } as unknown as Message;
  }
  close(): void {}
}

/** The placement below: its destroy() recorded, or failing as told. */
function recordingInner(destroyError?: Error): Placement & { destroyed: number } {
  return {
    destroyed: 0,
    create() {},
    destroy() {
      this.destroyed++;
      if (destroyError) throw destroyError;
    },
    describe: () => ({ driver: 'cgroupfs', path: '/x' }) as never,
    hierarchyDirs: () => [],
    targets: () => undefined,
    apply() {},
    pids: () => [],
  };
}

const UNIT = { slice: 'system.slice', name: 'tsrun-c1.scope', cgroupPath: '/system.slice/tsrun-c1.scope' };

t.test('a stop that fails still removes what systemd left, and reports the stop', async (t) => {
  const inner = recordingInner();
  const systemd = new ToldSystemd(new DBusError('org.freedesktop.DBus.Error.AccessDenied', 'StopUnit: denied'));
  const placement = new SystemdPlacement(inner, UNIT, 1, 'c1', undefined, DEFAULT_DEVICE_RULES, systemd, true);
  t.throws(() => placement.destroy(), /linux\.cgroupsPath: systemd refused tsrun-c1\.scope: denied/);
  t.equal(inner.destroyed, 1, 'the directories were removed all the same');
  t.same(systemd.asked, ['StopUnit', 'ResetFailedUnit']);
});

t.test("a stop that fails, then a removal that fails: the stop's error is the one said", async (t) => {
  const inner = recordingInner(new Error('rmdir: busy'));
  const systemd = new ToldSystemd(new DBusError('org.freedesktop.DBus.Error.AccessDenied', 'StopUnit: denied'));
  const placement = new SystemdPlacement(inner, UNIT, 1, 'c1', undefined, DEFAULT_DEVICE_RULES, systemd, true);
  t.throws(() => placement.destroy(), /systemd refused tsrun-c1\.scope: denied/);
  t.equal(inner.destroyed, 1);
});

t.test('a stop that works: the removal, and its own error if any', async (t) => {
  const inner = recordingInner();
  new SystemdPlacement(inner, UNIT, 2, 'c1', undefined, DEFAULT_DEVICE_RULES, new ToldSystemd(), true).destroy();
  t.equal(inner.destroyed, 1);
  const failing = recordingInner(new Error('rmdir: busy'));
  t.throws(
    () =>
      new SystemdPlacement(failing, UNIT, 2, 'c1', undefined, DEFAULT_DEVICE_RULES, new ToldSystemd(), true).destroy(),
    /rmdir: busy/,
  );
});

t.test('a unit systemd no longer has: nothing to stop, the removal as usual', async (t) => {
  const inner = recordingInner();
  const gone = new ToldSystemd(new DBusError('org.freedesktop.systemd1.NoSuchUnit', 'StopUnit: no such unit'));
  new SystemdPlacement(inner, UNIT, 1, 'c1', undefined, DEFAULT_DEVICE_RULES, gone, true).destroy();
  t.equal(inner.destroyed, 1);
});

t.test(
  'a systemd placement says an update may rewrite device rules, so Cgroup.update freezes a v1 container',
  async (t) => {
    // systemd re-applies the unit's DeviceAllow to the v1 files on any SetUnitProperties (cgroup-update.test.ts).
    const placement = new SystemdPlacement(
      recordingInner(),
      UNIT,
      1,
      'c1',
      undefined,
      DEFAULT_DEVICE_RULES,
      new ToldSystemd(),
      true,
    );
    t.equal(placement.rewritesDevicesOnSet, true);
  },
);
