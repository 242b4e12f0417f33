/**
 * A Platform (src/lib/platform.ts) for unit tests without root: a scripted
 * helper that says what tsrun-init would say and checks what the parent
 * answers, processes and cgroups that only record what was done to them,
 * and a snapshot of the container's state at each crash step.  What it
 * does not fake is real and harmless without root: the state store in a
 * temp dir, the exec fifo, hooks (small shell scripts), the pid file.
 */
import * as fs from 'fs';
import * as path from 'path';
import { type CgroupManager, type CgroupState } from '../src/lib/cgroup/manager';
import { type CgroupTargets } from '../src/lib/cgroup/placement';
import { type LinuxResources } from '../src/lib/cgroup/resources';
import { type CrashStep } from '../src/lib/crash';
import { type HelperStart, type Platform, realPlatform } from '../src/lib/platform';
import { type ChildMessage, Sync } from '../src/lib/sync';

/**
 * One step of the helper's side: a message it sends, one it waits for from
 * the parent, or a check the test runs at that point of the protocol.
 */
export type HelperStep = { say: ChildMessage } | { expect: Sync } | { meanwhile: () => void };
/** What one helper does, start to end; running out of steps is EOF (the helper exited). */
export type HelperScript = HelperStep[];

const say = (msg: ChildMessage): HelperStep => ({ say: msg });
export const helperSays = {
  initPid: (pid: number): HelperStep => say({ type: Sync.INIT_PID, pid }),
  usernsReady: (pid: number): HelperStep => say({ type: Sync.USERNS_READY, pid }),
  runHooks: (): HelperStep => say({ type: Sync.RUN_HOOKS }),
  setRlimits: (): HelperStep => say({ type: Sync.SET_RLIMITS }),
  ready: (): HelperStep => say({ type: Sync.READY }),
  error: (step: string, errno: number, detail = `${step} failed`): HelperStep =>
    say({ type: Sync.ERROR, failure: { step, path: '', detail, errno } }),
};
export const parentSends = (type: Sync): HelperStep => ({ expect: type });

/** A cgroup manager that records what was asked of it. */
export class FakeCgroup implements CgroupManager {
  created = false;
  destroyed = false;
  frozen = false;
  written: Array<LinuxResources | undefined> = [];
  applied: number[] = [];
  constructor(
    readonly dir: string,
    private readonly timeline: string[] = [],
    private readonly failCreate?: Error,
  ) {}
  create(): void {
    if (this.failCreate) throw this.failCreate;
    this.created = true;
    this.timeline.push('create the cgroup');
  }
  targets(): CgroupTargets {
    return { joins: [], cloneInto: this.dir };
  }
  apply(pid: number): void {
    this.applied.push(pid);
  }
  set(resources: LinuxResources | undefined): void {
    this.written.push(resources);
  }
  update(resources: LinuxResources): void {
    this.set(resources);
  }
  freeze(): void {
    this.frozen = true;
  }
  thaw(): void {
    this.frozen = false;
  }
  isFrozen(): boolean {
    return this.frozen;
  }
  pids(): number[] {
    return [];
  }
  killAll(): void {}
  stats(): Record<string, unknown> {
    return {};
  }
  oomKills(): number {
    return 0;
  }
  destroy(): void {
    this.destroyed = true;
    this.timeline.push('remove the cgroup');
  }
  describe(): CgroupState {
    return { driver: 'v2', paths: { '/fake/cgroup': this.dir } };
  }
}

/** What the state directory held when a crash step was reached. */
export interface CrashSnapshot {
  step: CrashStep;
  dirExists: boolean;
  /** state.json, parsed, or null when there was none. */
  state: { pid: number; cgroup: CgroupState } | null;
}

export class FakePlatform implements Platform {
  /** Each helper started, with what it was given. */
  readonly started: HelperStart[] = [];
  /** Messages the parent sent, in order. */
  readonly sent: Array<{ type: Sync; payload?: string }> = [];
  readonly killed: number[] = [];
  readonly reaped: number[] = [];
  /** fds handed out (sync sockets) and not yet closed. */
  readonly openFds = new Set<number>();
  readonly slept: number[] = [];
  readonly procWrites: Array<[string, string]> = [];
  readonly crashes: CrashSnapshot[] = [];
  readonly cgroupsMade: FakeCgroup[] = [];
  /** Problems with the parent's side of the protocol (a message it should not have sent). */
  readonly protocolErrors: string[] = [];
  /**
   * What was done, in order: processes killed and reaped, cgroups made and
   * removed, and whether the state directory was still there then.
   */
  readonly timeline: string[] = [];
  /** Throw from these calls, to fail a step. */
  failSpawn?: Error;
  failCgroupCreate?: Error;
  failProcWrite?: Error;
  failFifo?: Error;
  failPrlimit?: NodeJS.ErrnoException;
  /** Processes a helper forked that are left to us (helperOrphans) once it is killed. */
  orphans: number[] = [];
  /** launch made tsrun a subreaper (adoptOrphans) before its helper could fork anything. */
  adoptedOrphans = false;
  /** Where crash snapshots read state.json from. */
  stateDir?: string;

  private scripts: HelperScript[];
  private current: HelperStep[] = [];
  private nextPid = 1000;

  constructor(scripts: HelperScript[]) {
    this.scripts = [...scripts];
  }

  helper: Platform['helper'] = {
    spawn: (start) => {
      if (this.failSpawn) throw this.failSpawn;
      this.started.push(start);
      const script = this.scripts.shift();
      if (!script) throw new Error(`fake helper: no script for spawn #${this.started.length}`);
      this.current = [...script];
      const syncFd = 500 + this.started.length;
      this.openFds.add(syncFd);
      return { pid: this.nextPid++, syncFd };
    },
    receive: () => {
      while (this.current[0] && 'meanwhile' in this.current[0])
        (this.current.shift() as { meanwhile: () => void }).meanwhile();
      const step = this.current.shift();
      if (!step) return { type: 'eof' };
      if ('say' in step) {
        if (step.say.type === Sync.SECCOMP_LISTENER) this.openFds.add(step.say.fd);
        return step.say;
      }
      this.protocolErrors.push(`the parent waited for a message while the helper waited for ${describe(step)}`);
      return { type: 'eof' };
    },
    send: (_fd, type, payload) => {
      this.sent.push({ type, payload });
      while (this.current[0] && 'meanwhile' in this.current[0])
        (this.current.shift() as { meanwhile: () => void }).meanwhile();
      const next = this.current.shift();
      if (!next || !('expect' in next) || next.expect !== type)
        this.protocolErrors.push(`the parent sent ${Sync[type]} where the helper expected ${describe(next)}`);
    },
    close: (fd) => {
      this.openFds.delete(fd);
    },
  };

  processes: Platform['processes'] = {
    kill: (pid) => {
      this.killed.push(pid);
      this.timeline.push(`kill ${pid}`);
    },
    reap: (pid) => {
      this.reaped.push(pid);
      this.timeline.push(`reap ${pid}`);
    },
    waitExit: () => true,
    prlimit: () => {
      if (this.failPrlimit) throw this.failPrlimit;
    },
    adoptOrphans: () => {
      this.adoptedOrphans = true;
    },
    helperOrphans: (except) => this.orphans.filter((pid) => !except.includes(pid)),
  };

  cgroups: Platform['cgroups'] = {
    forConfig: (_config, id) => {
      const cgroup = new FakeCgroup(`/fake/cgroup/${id}`, this.timeline, this.failCgroupCreate);
      this.cgroupsMade.push(cgroup);
      return cgroup;
    },
    fromState: (state) => this.cgroupsMade.find((c) => c.dir === state.paths['/fake/cgroup']) ?? new FakeCgroup('?'),
  };

  host: Platform['host'] = {
    kindOf: (p) => {
      try {
        return fs.statSync(p).isDirectory() ? 'dir' : 'file';
      } catch {
        return null;
      }
    },
    cgroupHierarchies: () => [],
  };

  writeProcFile(file: string, text: string): void {
    if (this.failProcWrite) throw this.failProcWrite;
    this.procWrites.push([file, text]);
  }

  /** The exec fifo is real (a temp dir needs no root), unless failFifo says otherwise. */
  makeFifo(file: string): number {
    if (this.failFifo) throw this.failFifo;
    return realPlatform.makeFifo(file);
  }

  connectConsole(socketPath: string): number {
    return realPlatform.connectConsole(socketPath);
  }

  closeFd(fd: number): void {
    realPlatform.closeFd(fd);
  }

  processStartTime(pid: number): string | null {
    return realPlatform.processStartTime(pid);
  }

  euid(): number {
    return 0;
  }

  egid(): number {
    return 0;
  }

  runIdMapTool(tool: string, args: string[]): void {
    this.procWrites.push([tool, args.join(' ')]);
  }

  sleep(ms: number): void {
    this.slept.push(ms);
  }

  crashPoint(step: CrashStep): void {
    if (!this.stateDir) return;
    let state: CrashSnapshot['state'] = null;
    try {
      state = JSON.parse(fs.readFileSync(path.join(this.stateDir, 'state.json'), 'utf8'));
    } catch {
      // none yet
    }
    this.crashes.push({ step, dirExists: fs.existsSync(this.stateDir), state });
  }

  strerror(errno: number): string {
    return `Errno ${errno}`;
  }

  /** The helper steps no run reached (a script longer than the launch went). */
  unusedSteps(): number {
    return this.current.length + this.scripts.reduce((n, s) => n + s.length, 0);
  }
}

function describe(step: HelperStep | undefined): string {
  if (!step) return 'nothing (it had exited)';
  if ('meanwhile' in step) return 'a check';
  return 'say' in step ? `to send ${String(Sync[step.say.type as Sync] ?? step.say.type)}` : Sync[step.expect];
}
