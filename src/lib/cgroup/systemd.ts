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
 * systemd cannot express is applied too.  The device rules always go
 * in (DevicePolicy, DeviceAllow): a unit without them would, on v1, get
 * every device from systemd at its next daemon-reload.
 *
 * On a v1 or hybrid host systemd makes the unit's directory only in the
 * hierarchies it manages (name=systemd, memory, pids, devices, cpu and
 * blkio with accounting on, the hybrid cgroup2 tree): the rest (freezer,
 * cpuset, net_cls, perf_event, hugetlb, ...) are made and joined here, at
 * the same path, as runc's legacy manager does.
 */
import fs = require('fs');
import { TsrunError } from '../errors';
import { DBusConnection, DBusError } from '../dbus/client';
import { type DBusValue, type Message } from '../dbus/wire';
import { debug, warn } from '../log';
import { containerDeviceRules, type DeviceRule } from './devices';
import { type CgroupFiles } from './files';
import { type CgroupState, type HierarchyDir, type Placement, type SubCgroups } from './manager';
import { type CgroupTargets } from './placement';
import { type DeviceRuleConfig, type LinuxResources, resourcesAtCreate } from './resources';
export { annotationProperties, systemdUnitFor } from './systemd-units';
import {
  baseProperties,
  deviceProperties,
  resourceProperties,
  type SystemdUnit,
  systemdUnitFor,
  systemdVersionNumber,
  type UnitProperty,
} from './systemd-units';

/** systemd's own socket, no message bus in between (root only). */
export const SYSTEMD_PRIVATE_SOCKET = '/run/systemd/private';
const SYSTEMD = { destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1' };
const MANAGER = { ...SYSTEMD, interface: 'org.freedesktop.systemd1.Manager' };
/** How long a start or stop job may take (runc waits 30 s too). */
const JOB_TIMEOUT_MS = 30_000;

/**
 * The user's session bus, where its systemd manager answers (runc finds it
 * so): DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus.  Only a
 * unix:path address is taken (what dbus-user-session and systemd give).
 */
export function userBusSocket(env: NodeJS.ProcessEnv, exists = fs.existsSync): string {
  const address = env.DBUS_SESSION_BUS_ADDRESS;
  if (address) {
    for (const one of address.split(';')) {
      const [transport, keys = ''] = one.split(/:(.*)/s);
      if (transport !== 'unix') continue;
      const pathKey = keys.split(',').find((k) => k.startsWith('path='));
      if (pathKey) return decodeURIComponent(pathKey.slice('path='.length));
    }
    throw new TsrunError(
      `--systemd-cgroup: DBUS_SESSION_BUS_ADDRESS ${JSON.stringify(address)} has no unix:path= address, the one kind tsrun talks to`,
    );
  }
  const fallback = env.XDG_RUNTIME_DIR && `${env.XDG_RUNTIME_DIR.replace(/\/$/, '')}/bus`;
  if (fallback && exists(fallback)) return fallback;
  throw new TsrunError(
    `--systemd-cgroup: no session bus to reach this user's systemd manager: DBUS_SESSION_BUS_ADDRESS is not set and ${fallback ?? '$XDG_RUNTIME_DIR/bus (XDG_RUNTIME_DIR is not set)'} does not exist (a lingering user or a login session starts it, with dbus-user-session)`,
  );
}

/** A talk with systemd: one connection, opened when first needed, closed after each verb's step. */
export class Systemd {
  private conn?: DBusConnection;
  private subscribed = false;

  /**
   * `socket`: systemd's private socket (root: no message bus in between),
   * or with `bus`, a message bus where systemd answers by its name (a
   * user's manager, on the user's session bus).
   */
  constructor(
    private readonly socket: string | (() => string) = SYSTEMD_PRIVATE_SOCKET,
    readonly bus = false,
  ) {}

  private connection(): DBusConnection {
    if (!this.conn) {
      const socket = typeof this.socket === 'function' ? this.socket() : this.socket;
      try {
        this.conn = DBusConnection.connect(socket, { bus: this.bus, timeoutMs: JOB_TIMEOUT_MS });
      } catch (err) {
        throw new TsrunError(`--systemd-cgroup: cannot talk to systemd at ${socket}: ${(err as Error).message}`);
      }
    }
    return this.conn;
  }

  /**
   * A method of systemd's Manager.  Each waits as long as libdbus waits
   * for a reply (25 s): systemd answers at once unless it is busy, and
   * runc waits for it without a limit.
   */
  call(member: string, signature: string, body: DBusValue[]): Message {
    return this.connection().call({ ...MANAGER, member, signature, body });
  }

  /**
   * systemd's version number ("252" of "252.38-1~deb12u1"), or -1 (with a
   * warning) when its answer has no number: every property of a newer
   * systemd is then left out, as runc does.
   */
  version(): number {
    const text = String(this.property(SYSTEMD.path, MANAGER.interface, 'Version'));
    const version = systemdVersionNumber(text);
    if (version === undefined) warn(`--systemd-cgroup: cannot read systemd's version from ${JSON.stringify(text)}`);
    return version ?? -1;
  }

  /**
   * Start or stop a unit and wait for its job: "done", what systemd says
   * went wrong, or "vanished" when the job is gone without a JobRemoved
   * we saw (systemd drops a job that has nothing to do, a stop of a unit
   * already inactive, without the signal): the caller then looks at the
   * unit itself.
   */
  job(member: 'StartTransientUnit' | 'StopUnit', signature: string, body: DBusValue[]): string {
    // Subscribed first, so the job's end cannot pass before we listen.  A bus passes a signal on only to
    // those who asked for it (AddMatch); a peer socket sends every one to its subscribers.
    if (!this.subscribed) {
      if (this.bus)
        this.connection().call({
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'AddMatch',
          signature: 's',
          body: [`type='signal',sender='${SYSTEMD.destination}',interface='${MANAGER.interface}',member='JobRemoved'`],
        });
      this.call('Subscribe', '', []);
    }
    this.subscribed = true;
    const job = this.call(member, signature, body).body[0] as string;
    const deadline = Date.now() + JOB_TIMEOUT_MS;
    for (;;) {
      try {
        const removed = this.connection().waitSignal(
          (m) => m.member === 'JobRemoved' && m.interface === MANAGER.interface && m.body[1] === job,
          Math.max(1, Math.min(1000, deadline - Date.now())),
          `end of ${member}'s job ${job}`,
        );
        return removed.body[3] as string;
      } catch (err) {
        if (Date.now() >= deadline || !/in time$/.test((err as Error).message)) throw err;
      }
      // Asked within what is left of the job's time, so the whole wait stays within JOB_TIMEOUT_MS.
      if (!this.exists(job, 'org.freedesktop.systemd1.Job', Math.max(1, deadline - Date.now()))) return 'vanished';
    }
  }

  /** The manager's own cgroup (a user's: "/user.slice/user-1000.slice/user@1000.service"). */
  controlGroup(): string {
    return String(this.property(SYSTEMD.path, MANAGER.interface, 'ControlGroup'));
  }

  /** One property of the object at `path`. */
  private property(path: string, iface: string, name: string, timeoutMs?: number): DBusValue {
    const reply = this.connection().call({
      ...SYSTEMD,
      path,
      interface: 'org.freedesktop.DBus.Properties',
      member: 'Get',
      signature: 'ss',
      body: [iface, name],
      timeoutMs,
    });
    return (reply.body[0] as { value: DBusValue }).value;
  }

  /** Whether systemd still has the object at `path` (a job, a unit). */
  private exists(path: string, iface: string, timeoutMs?: number): boolean {
    try {
      this.property(path, iface, 'Id', timeoutMs);
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
    return String(this.property(path, 'org.freedesktop.systemd1.Unit', 'ActiveState'));
  }

  close(): void {
    this.conn?.close();
    this.conn = undefined;
    this.subscribed = false;
  }
}

/** The config's device rules and runc's defaults as unit properties; what systemd cannot take is warned of. */
function devicePropertiesFor(
  devices: readonly DeviceRuleConfig[],
  defaults: readonly DeviceRule[],
  systemdVersion: number,
): UnitProperty[] {
  const { properties, warnings } = deviceProperties(containerDeviceRules(devices, defaults), systemdVersion, {
    procDevices: () => fs.readFileSync('/proc/devices', 'utf8'),
    exists: (p) => fs.existsSync(p),
  });
  for (const w of warnings) warn(w);
  return properties;
}

/** Is systemd the init here?  (sd_booted(3): /run/systemd/system is a directory.) */
export function systemdBooted(files: CgroupFiles): boolean {
  return files.exists('/run/systemd/system');
}

/**
 * The unit's directories are where cgroupfs would put a container whose
 * cgroupsPath is the unit's absolute path, so a cgroupfs placement there
 * (`inner`) does the file work: join, list, remove.
 */
export class SystemdPlacement implements Placement {
  readonly unit: SystemdUnit;
  /** systemd may re-apply every setting of the unit (device rules included) at a property change. */
  readonly rewritesDevicesOnSet = true;
  /** The unit exists already (a recorded container): processes join its directories. */
  private started: boolean;
  /** The unit was started here with the limits: the first set() need not send them again. */
  private propertiesSent = false;

  constructor(
    private readonly inner: Placement,
    unit: SystemdUnit,
    private readonly version: 1 | 2,
    private readonly id: string,
    private readonly resources: LinuxResources | undefined,
    /** The device rules after the config's (defaultDeviceRules). */
    private readonly deviceDefaults: readonly DeviceRule[],
    private readonly systemd: Systemd,
    started: boolean,
    /** From org.systemd.property.* annotations: sent last at the start, so they override tsrun's own. */
    private readonly annotated: UnitProperty[] = [],
  ) {
    this.unit = unit;
    this.started = started;
  }

  /** The unit a new container gets, or the one state.json recorded. */
  static unitOf(cgroupsPath: string | undefined, id: string, existing?: CgroupState): SystemdUnit {
    if (!existing) return systemdUnitFor(cgroupsPath, id);
    if (!existing.unit) throw new TsrunError('state.json: a systemd cgroup without its unit');
    return { slice: existing.slice ?? '', name: existing.unit, cgroupPath: '' };
  }

  hierarchyDirs(): HierarchyDir[] {
    return this.inner.hierarchyDirs();
  }

  describe(): CgroupState {
    return {
      ...this.inner.describe(),
      manager: 'systemd',
      unit: this.unit.name,
      slice: this.unit.slice,
      ...(this.systemd.bus ? { userManager: true } : {}),
    };
  }

  /** Nothing to make before a process exists: systemd makes a scope with its first process (apply). */
  create(): void {}

  /**
   * A new container: none, so the parent moves the helper in (apply, which
   * starts the unit); a running one: its directories, as cgroupfs offers
   * them (exec --cgroup: sub-cgroups of them).
   */
  targets(sub?: SubCgroups): CgroupTargets | undefined {
    return this.started ? this.inner.targets(sub) : undefined;
  }

  apply(pid: number, sub?: SubCgroups): void {
    if (this.started) return this.inner.apply(pid, sub);
    this.start(pid);
    this.started = true;
    this.propertiesSent = true;
    if (this.version === 1) {
      // The hierarchies systemd does not manage; joining those it does is a no-op.
      this.inner.create();
      this.inner.apply(pid);
    }
  }

  /** StartTransientUnit with the helper's pid in it; a failed unit of the same name left behind is reset once. */
  private start(pid: number): void {
    const systemdVersion = this.systemd.version();
    const props: UnitProperty[] = [
      ...baseProperties(this.unit, this.id, this.version, [pid]),
      ...resourceProperties(this.resources, this.version, systemdVersion),
      ...devicePropertiesFor(resourcesAtCreate(this.resources).devices!, this.deviceDefaults, systemdVersion),
      ...this.annotated,
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
    const systemdVersion = this.systemd.version();
    const props = resourceProperties(resources, this.version, systemdVersion);
    if (resources?.devices) props.push(...devicePropertiesFor(resources.devices, this.deviceDefaults, systemdVersion));
    try {
      if (props.length) this.systemd.call('SetUnitProperties', 'sba(sv)', [this.unit.name, true, props]);
    } catch (err) {
      throw this.named(err);
    } finally {
      this.systemd.close();
    }
  }

  pids(): number[] {
    return this.inner.pids();
  }

  /**
   * Stop the unit (systemd removes its cgroup), forget it if it failed,
   * and remove what is left of the directory (a unit already gone with
   * its last process leaves nothing; sub-cgroups the container made go
   * with it).
   */
  destroy(): void {
    let stopFailed: Error | undefined;
    try {
      // A scope goes by itself with its last process: only a live one is stopped.
      const state = this.systemd.activeState(this.unit.name);
      if (state !== null && state !== 'inactive' && state !== 'failed') {
        const result = this.systemd.job('StopUnit', 'ss', [this.unit.name, 'replace']);
        if (result !== 'done') debug(`systemd: stopping ${this.unit.name} ended "${result}"`);
      }
    } catch (err) {
      if (!(err instanceof DBusError && err.name === 'org.freedesktop.systemd1.NoSuchUnit'))
        stopFailed = this.named(err);
    } finally {
      this.resetFailed();
      this.systemd.close();
    }
    // What systemd left (the hierarchies it does not manage, sub-cgroups) goes even when the stop failed;
    // a directory still busy (the stop timed out with processes in it) stays, and the stop's error says why.
    try {
      this.inner.destroy();
    } catch (err) {
      if (!stopFailed) throw err;
      debug(`systemd: after the failed stop of ${this.unit.name}: ${(err as Error).message}`);
    }
    if (stopFailed) throw stopFailed;
  }
}
