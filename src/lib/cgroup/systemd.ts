/**
 * The systemd placement manager (--systemd-cgroup): the container's cgroup
 * is a transient unit systemd makes and removes, asked over D-Bus on
 * systemd's private socket (client.ts; systemctl talks to it the same
 * way as root).  A new container's scope is started with the helper's pid
 * in it (StartTransientUnit, PIDs), so the helper is in the cgroup before
 * it runs a single op, and the init it forks inherits it; a running
 * container's processes (exec) join the scope's directory as cgroupfs
 * ones do.  Limits go in as unit properties where systemd has one, and
 * the version writer then writes every file, as runc does, so what
 * systemd cannot express is applied too.
 *
 * cgroup v2 (unified hosts) only so far: a v1 or hybrid host with systemd
 * is refused by name.
 */
import path = require('path');
import { TsrunError } from '../errors';
import { DBusConnection, DBusError } from '../dbus/client';
import { type DBusValue, type Message } from '../dbus/wire';
import { debug } from '../log';
import { type CgroupFiles, writeKnob } from './files';
import {
  type CgroupState,
  type Hierarchy,
  type HierarchyDir,
  type Placement,
  removeCgroupTree,
  type SubCgroups,
  subCgroupDir,
  treePids,
} from './manager';
import { type CgroupTargets } from './placement';
import { type LinuxResources } from './resources';
import {
  baseProperties,
  resourceProperties,
  type SystemdUnit,
  systemdUnitFor,
  type UnitProperty,
} from './systemd-units';

/** systemd's own socket, no message bus in between (root only). */
export const SYSTEMD_PRIVATE_SOCKET = '/run/systemd/private';
const SYSTEMD = { destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1' };
const MANAGER = { ...SYSTEMD, interface: 'org.freedesktop.systemd1.Manager' };
/** How long a start or stop job may take (runc waits 30 s too). */
const JOB_TIMEOUT_MS = 30_000;

/** A talk with systemd: one connection, opened when first needed, closed after each verb's step. */
export class Systemd {
  private conn?: DBusConnection;
  private subscribed = false;

  constructor(private readonly socket = SYSTEMD_PRIVATE_SOCKET) {}

  private connection(): DBusConnection {
    if (!this.conn) {
      try {
        this.conn = DBusConnection.connect(this.socket, { bus: false, timeoutMs: JOB_TIMEOUT_MS });
      } catch (err) {
        throw new TsrunError(`--systemd-cgroup: cannot talk to systemd at ${this.socket}: ${(err as Error).message}`);
      }
    }
    return this.conn;
  }

  call(member: string, signature: string, body: DBusValue[]): Message {
    return this.connection().call({ ...MANAGER, member, signature, body, timeoutMs: JOB_TIMEOUT_MS });
  }

  /** systemd's version number ("252" of "252.38-1~deb12u1"). */
  version(): number {
    const reply = this.connection().call({
      ...SYSTEMD,
      interface: 'org.freedesktop.DBus.Properties',
      member: 'Get',
      signature: 'ss',
      body: ['org.freedesktop.systemd1.Manager', 'Version'],
    });
    const text = String((reply.body[0] as { value: DBusValue }).value);
    return parseInt(text, 10) || 0;
  }

  /**
   * Start or stop a unit and wait for its job: "done", what systemd says
   * went wrong, or "vanished" when the job is gone without a JobRemoved
   * we saw (systemd drops a job that has nothing to do, a stop of a unit
   * already inactive, without the signal): the caller then looks at the
   * unit itself.
   */
  job(member: 'StartTransientUnit' | 'StopUnit', signature: string, body: DBusValue[]): string {
    const conn = this.connection();
    // Subscribed first, so the job's end cannot pass before we listen.
    if (!this.subscribed) this.call('Subscribe', '', []);
    this.subscribed = true;
    const job = this.call(member, signature, body).body[0] as string;
    const deadline = Date.now() + JOB_TIMEOUT_MS;
    for (;;) {
      try {
        const removed = conn.waitSignal(
          (m) => m.member === 'JobRemoved' && m.interface === MANAGER.interface && m.body[1] === job,
          Math.max(1, Math.min(1000, deadline - Date.now())),
          `end of ${member}'s job ${job}`,
        );
        return removed.body[3] as string;
      } catch (err) {
        if (Date.now() >= deadline || !/in time$/.test((err as Error).message)) throw err;
      }
      if (!this.exists(job, 'org.freedesktop.systemd1.Job')) return 'vanished';
    }
  }

  /** Whether systemd still has the object at `path` (a job, a unit). */
  private exists(path: string, iface: string): boolean {
    try {
      this.connection().call({
        ...SYSTEMD,
        path,
        interface: 'org.freedesktop.DBus.Properties',
        member: 'Get',
        signature: 'ss',
        body: [iface, 'Id'],
      });
      return true;
    } catch (err) {
      if (err instanceof DBusError) return false;
      throw err;
    }
  }

  /** A unit's ActiveState ("active", "inactive", "failed", ...), or null when systemd has no such unit. */
  activeState(unit: string): string | null {
    let path: string;
    try {
      path = this.call('GetUnit', 's', [unit]).body[0] as string;
    } catch (err) {
      if (err instanceof DBusError && err.name === 'org.freedesktop.systemd1.NoSuchUnit') return null;
      throw err;
    }
    const reply = this.connection().call({
      ...SYSTEMD,
      path,
      interface: 'org.freedesktop.DBus.Properties',
      member: 'Get',
      signature: 'ss',
      body: ['org.freedesktop.systemd1.Unit', 'ActiveState'],
    });
    return String((reply.body[0] as { value: DBusValue }).value);
  }

  close(): void {
    this.conn?.close();
    this.conn = undefined;
    this.subscribed = false;
  }
}

/** Is systemd the init here?  (sd_booted(3): /run/systemd/system is a directory.) */
export function systemdBooted(files: CgroupFiles): boolean {
  return files.exists('/run/systemd/system');
}

export class SystemdPlacement implements Placement {
  readonly unit: SystemdUnit;
  readonly dir: string;
  /** The unit exists already (a recorded container): processes join its directory. */
  private started: boolean;
  /** The unit was started here with the limits: the first set() need not send them again. */
  private propertiesSent = false;

  constructor(
    private readonly hierarchy: Hierarchy,
    cgroupsPath: string | undefined,
    private readonly id: string,
    private readonly resources: LinuxResources | undefined,
    private readonly files: CgroupFiles,
    private readonly sleep: (ms: number) => void,
    private readonly systemd: Systemd,
    existing?: CgroupState,
  ) {
    if (existing) {
      if (!existing.unit) throw new TsrunError('state.json: a systemd cgroup without its unit');
      this.unit = { slice: existing.slice ?? '', name: existing.unit, cgroupPath: '' };
      this.dir = existing.paths[hierarchy.mountPoint];
      this.started = true;
    } else {
      this.unit = systemdUnitFor(cgroupsPath, id);
      this.dir = path.join(hierarchy.mountPoint, this.unit.cgroupPath);
      this.started = false;
    }
  }

  hierarchyDirs(): HierarchyDir[] {
    return [{ ...this.hierarchy, dir: this.dir }];
  }

  describe(): CgroupState {
    return {
      driver: 'v2',
      manager: 'systemd',
      unit: this.unit.name,
      slice: this.unit.slice,
      paths: { [this.hierarchy.mountPoint]: this.dir },
    };
  }

  /** Nothing to make before a process exists: systemd makes a scope with its first process (apply). */
  create(): void {}

  /**
   * A new container: none, so the parent moves the helper in (apply, which
   * starts the unit); a running one: its scope, as cgroupfs offers its
   * directory (exec --cgroup: a sub-cgroup of it).
   */
  targets(sub?: SubCgroups): CgroupTargets | undefined {
    if (!this.started) return undefined;
    return { joins: [], cloneInto: this.target(sub) };
  }

  private target(sub?: SubCgroups): string {
    if (!sub) return this.dir;
    const named = Object.keys(sub).filter((c) => c !== '');
    if (named.length)
      throw new TsrunError(
        `--cgroup: per-controller paths (${named.join(', ')}) need cgroup v1; on cgroup v2 give one path`,
      );
    return subCgroupDir(this.dir, sub['']);
  }

  apply(pid: number, sub?: SubCgroups): void {
    if (this.started) {
      writeKnob(this.files, this.target(sub), 'cgroup.procs', pid, sub ? '--cgroup' : 'linux.cgroupsPath');
      return;
    }
    this.start(pid);
    this.started = true;
    this.propertiesSent = true;
  }

  /** StartTransientUnit with the helper's pid in it; a failed unit of the same name left behind is reset once. */
  private start(pid: number): void {
    const props: UnitProperty[] = [
      ...baseProperties(this.unit, this.id, 2, [pid]),
      ...resourceProperties(this.resources, 2, this.systemd.version()),
    ];
    debug(`systemd: start ${this.unit.name} in ${this.unit.slice} with ${props.map(([k]) => k).join(', ')}`);
    const body: DBusValue[] = [this.unit.name, 'replace', props, []];
    try {
      let result: string;
      try {
        result = this.systemd.job('StartTransientUnit', 'ssa(sv)a(sa(sv))', body);
      } catch (err) {
        if (!(err instanceof DBusError && err.name === 'org.freedesktop.systemd1.UnitExists')) throw this.named(err);
        this.resetFailed();
        try {
          result = this.systemd.job('StartTransientUnit', 'ssa(sv)a(sa(sv))', body);
        } catch (again) {
          throw this.named(again);
        }
      }
      if (result === 'vanished') result = this.systemd.activeState(this.unit.name) === 'active' ? 'done' : 'failed';
      if (result !== 'done') {
        this.resetFailed();
        throw new TsrunError(`linux.cgroupsPath: systemd could not start ${this.unit.name}: the job ended "${result}"`);
      }
    } finally {
      this.systemd.close();
    }
  }

  private named(err: unknown): Error {
    if (err instanceof DBusError)
      return new TsrunError(
        `linux.cgroupsPath: systemd refused ${this.unit.name}: ${err.message.replace(/^\w+: /, '')}`,
      );
    return err as Error;
  }

  private resetFailed(): void {
    try {
      this.systemd.call('ResetFailedUnit', 's', [this.unit.name]);
    } catch {
      // not failed, or gone
    }
  }

  /** systemd updates the unit's properties where it has them (the writer then writes every file). */
  setProperties(resources: LinuxResources | undefined): void {
    if (!this.started) return; // the unit starts with them
    if (this.propertiesSent) {
      this.propertiesSent = false;
      return;
    }
    const props = resourceProperties(resources, 2, this.systemd.version());
    try {
      if (props.length) this.systemd.call('SetUnitProperties', 'sba(sv)', [this.unit.name, true, props]);
    } catch (err) {
      throw this.named(err);
    } finally {
      this.systemd.close();
    }
  }

  pids(): number[] {
    return treePids(this.files, this.dir);
  }

  /**
   * Stop the unit (systemd removes its cgroup), forget it if it failed,
   * and remove what is left of the directory (a unit already gone with
   * its last process leaves nothing; sub-cgroups the container made go
   * with it).
   */
  destroy(): void {
    try {
      // A scope goes by itself with its last process: only a live one is stopped.
      const state = this.systemd.activeState(this.unit.name);
      if (state !== null && state !== 'inactive' && state !== 'failed') {
        const result = this.systemd.job('StopUnit', 'ss', [this.unit.name, 'replace']);
        if (result !== 'done') debug(`systemd: stopping ${this.unit.name} ended "${result}"`);
      }
    } catch (err) {
      if (!(err instanceof DBusError && err.name === 'org.freedesktop.systemd1.NoSuchUnit')) throw this.named(err);
    } finally {
      this.resetFailed();
      this.systemd.close();
    }
    removeCgroupTree(this.files, this.dir, this.sleep);
  }
}
