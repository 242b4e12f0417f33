/**
 * Cgroup.update (src/lib/cgroup/manager.ts): new device rules on a v1
 * writer are set with the container frozen, and whatever fails, a
 * container tsrun froze is thawed and one the user paused stays paused.
 * A writer that records its calls stands for the files; no root.
 */
import t from 'tap';
import { Cgroup, MissingControllerError, type Placement, type VersionWriter } from '../../src/lib/cgroup/manager';
import { TsrunError } from '../../src/lib/errors';

function recordingWriter(opts: { frozen?: boolean; freezeError?: TsrunError; setError?: string; inSteps?: boolean }) {
  const calls: string[] = [];
  let frozen = !!opts.frozen;
  const writer: VersionWriter = {
    devicesInSteps: opts.inSteps ?? true,
    set: () => {
      calls.push(`set while ${frozen ? 'frozen' : 'running'}`);
      if (opts.setError) throw new TsrunError(opts.setError);
    },
    freeze: () => {
      calls.push('freeze');
      if (opts.freezeError) throw opts.freezeError;
      frozen = true;
    },
    thaw: () => {
      calls.push('thaw');
      frozen = false;
    },
    isFrozen: () => frozen,
    killAll: () => {},
    stats: () => ({}),
    oomKills: () => 0,
  };
  return { writer, calls, frozen: () => frozen };
}

const placement = {} as Placement;
const devices = { devices: [{ allow: false, access: 'rwm' }] };

t.test('device rules on v1: frozen while they are set, thawed after', async (t) => {
  const w = recordingWriter({});
  new Cgroup(placement, w.writer, []).update(devices);
  t.same(w.calls, ['freeze', 'set while frozen', 'thaw']);
});

t.test('a paused container stays paused', async (t) => {
  const w = recordingWriter({ frozen: true });
  new Cgroup(placement, w.writer, []).update(devices);
  t.same(w.calls, ['set while frozen']);
  t.ok(w.frozen());
});

t.test('no device rules, or v2: no freeze', async (t) => {
  const limits = recordingWriter({});
  new Cgroup(placement, limits.writer, []).update({ pids: { limit: 5 } });
  t.same(limits.calls, ['set while running']);
  const v2 = recordingWriter({ inSteps: false });
  new Cgroup(placement, v2.writer, []).update(devices);
  t.same(v2.calls, ['set while running']);
});

t.test('under systemd on v1, any update is made frozen: systemd may re-apply the device rules', async (t) => {
  const systemd = { rewritesDevicesOnSet: true } as Placement;
  const v1 = recordingWriter({});
  new Cgroup(systemd, v1.writer, []).update({ pids: { limit: 5 } });
  t.same(v1.calls, ['freeze', 'set while frozen', 'thaw']);
  const v2 = recordingWriter({ inSteps: false });
  new Cgroup(systemd, v2.writer, []).update({ pids: { limit: 5 } });
  t.same(v2.calls, ['set while running'], 'v2 swaps one filter for another at once');
});

t.test('a freeze error that merely mentions a freezer is not taken for a missing one', async (t) => {
  const w = recordingWriter({ freezeError: new TsrunError('pause: freezer.state: not permitted') });
  t.throws(() => new Cgroup(placement, w.writer, []).update(devices), /not permitted/);
  t.same(w.calls, ['freeze', 'thaw']);
});

t.test('a failed set still thaws, and its error is the one said', async (t) => {
  const w = recordingWriter({ setError: 'linux.resources.devices: bad' });
  t.throws(() => new Cgroup(placement, w.writer, []).update(devices), /linux\.resources\.devices: bad/);
  t.same(w.calls, ['freeze', 'set while frozen', 'thaw']);
  t.notOk(w.frozen());
});

t.test('a freeze that fails is thawed and fails the update; no freezer at all updates without', async (t) => {
  const stuck = recordingWriter({ freezeError: new TsrunError('pause: the cgroup did not freeze') });
  t.throws(() => new Cgroup(placement, stuck.writer, []).update(devices), /did not freeze/);
  t.same(stuck.calls, ['freeze', 'thaw'], 'thawed, nothing set');
  const none = recordingWriter({ freezeError: new MissingControllerError('freezer', 'pause') });
  new Cgroup(placement, none.writer, []).update(devices);
  t.same(none.calls, ['freeze', 'set while running']);
});
