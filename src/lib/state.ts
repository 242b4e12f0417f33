/**
 * The state store: one directory per container under --root.
 *
 *   <root>/<id>/state.json   what we know (written atomically: tmp + rename)
 *   <root>/<id>/exec.fifo    exists from create until start
 *   <root>/<id>/bundle/      --image only: the bundle made from the image
 *
 * --root and every directory in it are 0700 and the files 0600, as runc
 * makes its root: what is in here (an image container's config with its
 * environment, the rootfs mount point) is nobody else's to read or reach.
 *
 * Mutating verbs hold an flock on the directory for their whole run (exec
 * while it sets its process up), so concurrent commands on one id
 * serialize; readers (state, list, kill, ps) need no lock because
 * state.json is replaced atomically.
 */
import fs = require('fs');
import path = require('path');
import { type CgroupState } from './cgroup/manager';
import { type Hooks, type Process, type Seccomp } from './config';
import { type ContainerProcessAttrs } from './process-attrs';
import { describeFsError, TsrunError } from './errors';
import { native } from './native';
import { removeTree } from './remove-tree';

export type Status = 'creating' | 'created' | 'running' | 'stopped' | 'paused';

export interface ContainerRecord {
  ociVersion: string;
  id: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat when created: tells our init from a recycled pid. */
  initStartTime: string;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations: Record<string, string>;
  /** Hooks that matter to the later verbs: start waits for startContainer, runs poststart; delete runs poststop. */
  hooks: Pick<Hooks, 'startContainer' | 'poststart' | 'poststop'>;
  /** Paths of the init's namespaces, for exec and for hooks. */
  namespaces: Record<string, string>;
  /** The container's cgroups. */
  cgroup: CgroupState;
  /** config.json's process: exec starts from it, as runc's does. */
  process?: Process;
  /** linux.seccomp: exec'd processes get the container's filter too. */
  seccomp?: Seccomp;
  /** linux.personality and linux.memoryPolicy: exec'd processes get them too, as runc's do. */
  processAttrs?: ContainerProcessAttrs;
  /**
   * What the init's fds 0-2 were when it was made (readlink of /proc/PID/fd/N:
   * "pipe:[123]", "/dev/pts/0"), before its program could replace them:
   * checkpoint writes them to descriptors.json, so a restore can hand new
   * pipes in place of those (runc's external descriptors).
   */
  stdio?: string[];
  /** No mount namespace of its own: the rootfs bind tsrun made in the host's, which delete detaches (with all under it). */
  hostMounts?: string;
  /**
   * The id of tsrun's own rootfs bind at hostMounts (the mount the init is
   * chrooted into), recorded once create has launched it: delete detaches
   * that mount and nothing else.
   */
  hostMountId?: number;
  /** The same mount's id that is never reused (Linux 6.8+): what delete checks before it detaches. */
  hostMountUniqueId?: number;
  /**
   * The id of the mount that was on top at hostMounts before create (null:
   * none).  For a create killed before hostMountId was recorded, delete
   * detaches only what lies on top of it, so a mount of the caller's at the
   * rootfs path is never taken.
   */
  hostMountsBase?: number | null;
}

/** The OCI state, as `tsrun state` prints it and hooks read it. */
export interface OciState {
  ociVersion: string;
  id: string;
  pid: number;
  status: Status;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
}

/** Where restore binds the rootfs for CRIU, in the container's state dir (criu/restore.ts). */
export const CRIU_ROOT = 'criu-root';

/** Under --root beside the containers; an id cannot take this name. */
const CACHE_DIR = '.cache';

/**
 * runc's rule: letters, digits, and _ + - . ; not "." or "..".  An id may
 * start with "." (runc lists such containers, and so does `list`); only
 * the cache's own name is taken.
 */
export function validateId(id: string): void {
  if (!id) throw new TsrunError('container id cannot be empty');
  if (id === CACHE_DIR) throw new TsrunError(`invalid container id "${id}": reserved for tsrun's cache`);
  if (!/^[\w+\-.]+$/.test(id) || id === '.' || id === '..' || id.length > 1024)
    throw new TsrunError(`invalid container id "${id}": use letters, digits, "_", "+", "-" and "."`);
}

/** Start time of a process, or null if it is gone or a zombie (nobody runs in it). */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may hold spaces and parentheses: fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  return fields[19];
}

/**
 * An init that is no longer running: did it die in tsrun's helper, before
 * exec'ing the program (a startContainer hook failed)?  A zombie keeps its
 * name, and the helper's is "tsrun-init" until the exec.  false when it
 * is gone altogether (reaped): a program that ran and ended at once looks
 * the same, and is the likelier.
 */
export function initDiedBeforeExec(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tsrun-init';
  } catch {
    return false;
  }
}

/** The init still runs tsrun's helper (from its memfd): it has not exec'd the container's program. */
export function waitingToStart(pid: number): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`).startsWith('/memfd:tsrun-init');
  } catch {
    return true; // unreadable: trust the fifo
  }
}

export class StateStore {
  /**
   * `userDefault`: root is the default a user gets in $XDG_RUNTIME_DIR,
   * a path from the environment: it must be the user's own, and is kept
   * 0700 with the sticky bit, which XDG's clean-up of the runtime dir
   * leaves alone (runc keeps its own so).
   */
  constructor(
    readonly root: string,
    private readonly userDefault = false,
  ) {}

  dir(id: string): string {
    return path.join(this.root, id);
  }

  private statePath(id: string): string {
    return path.join(this.dir(id), 'state.json');
  }

  /** Compiled seccomp filters, keyed by what they were compiled from (seccomp.ts). */
  seccompCacheDir(): string {
    return path.join(this.root, CACHE_DIR, 'seccomp');
  }

  fifoPath(id: string): string {
    return path.join(this.dir(id), 'exec.fifo');
  }

  /**
   * Claim a new id: the directory's creation is the claim.  Returns the
   * locked dir fd.  A directory with no state.json whose lock nobody holds
   * is a create that was killed before it recorded anything: it is taken.
   *
   * The mkdir and the flock of a claim happen under a lock on --root
   * itself, and so does every takeover: otherwise a second create could
   * find a first one's directory between its mkdir and its flock, take it
   * for abandoned and replace it, and both would go on as the winner.
   */
  claim(id: string): number {
    validateId(id);
    try {
      fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new TsrunError(describeFsError(err, `--root ${this.root}`));
    }
    if (this.userDefault) this.keepUserRoot();
    return this.underRootLock(() => {
      for (let attempt = 0; ; attempt++) {
        try {
          fs.mkdirSync(this.dir(id), { mode: 0o700 });
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
            throw new TsrunError(describeFsError(err, `state dir ${this.dir(id)}`));
          if (attempt > 0 || !this.removeAbandoned(id)) throw new TsrunError(`container "${id}" already exists`);
        }
      }
      const fd = fs.openSync(this.dir(id), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      native.flock(fd, true, true);
      return fd;
    });
  }

  /** The user's default root: its own directory, 0700 and sticky, or a one-line refusal. */
  private keepUserRoot(): void {
    const st = this.refuseForeignRoot()!;
    if ((st.mode & 0o7777) !== 0o1700) {
      try {
        fs.chmodSync(this.root, 0o1700);
      } catch (err) {
        throw new TsrunError(describeFsError(err, `--root ${this.root} (the default in $XDG_RUNTIME_DIR)`));
      }
    }
  }

  /**
   * The user's default root, if it exists, is its own directory, for every
   * verb: state someone else planted there is never read or acted on.
   * Its stat; undefined when there is none (yet), or it is not the default.
   */
  refuseForeignRoot(): fs.Stats | undefined {
    if (!this.userDefault) return undefined;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.root);
    } catch {
      return undefined;
    }
    const euid = process.geteuid?.() ?? 0;
    if (!st.isDirectory() || st.uid !== euid)
      throw new TsrunError(
        `--root ${this.root} (the default in $XDG_RUNTIME_DIR): ${st.isDirectory() ? `owned by uid ${st.uid}` : 'not a directory'}, not this user's (uid ${euid}); check $XDG_RUNTIME_DIR`,
      );
    return st;
  }

  /** Remove a state dir that holds no state.json and that no live tsrun holds locked; true if it is gone. */
  removeIfAbandoned(id: string): boolean {
    return this.underRootLock(() => this.removeAbandoned(id));
  }

  /** Claims and takeovers, one at a time (an flock on --root, held for a few syscalls). */
  private underRootLock<R>(fn: () => R): R {
    let fd: number;
    try {
      fd = fs.openSync(this.root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch {
      return fn(); // no --root yet: nothing to take over either
    }
    try {
      native.flock(fd, true, true);
      return fn();
    } finally {
      fs.closeSync(fd);
    }
  }

  private removeAbandoned(id: string): boolean {
    let fd: number;
    try {
      fd = fs.openSync(this.dir(id), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch {
      return true; // gone meanwhile
    }
    try {
      if (!native.flock(fd, true, false) || this.exists(id)) return false;
      this.releaseCriuRoot(id);
      removeTree(this.dir(id));
      return true;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Some live process (a create, a delete) holds this container's lock. */
  lockHeld(id: string): boolean {
    let fd: number;
    try {
      fd = fs.openSync(this.dir(id), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch {
      return false;
    }
    try {
      return !native.flock(fd, true, false);
    } finally {
      fs.closeSync(fd); // and with it the lock, if we took it
    }
  }

  /** Lock an existing container's directory; throws if it does not exist. */
  lock(id: string): number {
    validateId(id);
    let fd: number;
    try {
      fd = fs.openSync(this.dir(id), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch {
      throw new TsrunError(`container "${id}" does not exist`);
    }
    native.flock(fd, true, true);
    // It may have been deleted while we waited for the lock.
    if (fs.fstatSync(fd).nlink === 0 || !fs.existsSync(this.statePath(id))) {
      fs.closeSync(fd);
      throw new TsrunError(`container "${id}" does not exist`);
    }
    return fd;
  }

  unlock(fd: number): void {
    fs.closeSync(fd); // closing drops the flock
  }

  /** `fn` under the container's lock (lock(), then unlock() whatever happens). */
  withLock<T>(id: string, fn: () => T): T {
    const fd = this.lock(id);
    try {
      return fn();
    } finally {
      this.unlock(fd);
    }
  }

  /** Replace state.json whole (a reader never sees half of it); a full or read-only --root is an error naming it. */
  save(record: ContainerRecord): void {
    const tmp = `${this.statePath(record.id)}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
      fs.renameSync(tmp, this.statePath(record.id));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw new TsrunError(describeFsError(err, `write ${this.statePath(record.id)}`));
    }
  }

  load(id: string): ContainerRecord {
    validateId(id);
    let text: string;
    try {
      text = fs.readFileSync(this.statePath(id), 'utf8');
    } catch {
      throw new TsrunError(`container "${id}" does not exist`);
    }
    return JSON.parse(text) as ContainerRecord;
  }

  exists(id: string): boolean {
    return fs.existsSync(this.statePath(id));
  }

  /**
   * Ids with a state.json.  A directory without one is a create under way
   * (skipped) or one killed before it recorded anything: an empty claim
   * whose lock nobody holds, which is removed here, so that nothing at all
   * is left of such a create once anything lists the containers.
   */
  list(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.root);
    } catch {
      return [];
    }
    return names
      .filter((n) => {
        if (n === CACHE_DIR) return false;
        if (fs.existsSync(this.statePath(n))) return true;
        if (this.isBareClaim(n)) this.removeIfAbandoned(n);
        return false;
      })
      .sort();
  }

  /** A directory holding nothing, or only a state.json that was never finished. */
  private isBareClaim(id: string): boolean {
    try {
      return fs.readdirSync(this.dir(id)).every((e) => /^state\.json\.\d+\.tmp$/.test(e));
    } catch {
      return false;
    }
  }

  remove(id: string): void {
    this.releaseCriuRoot(id);
    removeTree(this.dir(id));
  }

  /**
   * A restore killed while CRIU ran leaves its bind of the rootfs at
   * <dir>/criu-root (criu/restore.ts): detached before the directory is
   * removed, or the removal would walk into the bundle's rootfs (a bind on
   * the same filesystem as --root looks like a plain directory to it).
   */
  private releaseCriuRoot(id: string): void {
    const criuRoot = path.join(this.dir(id), CRIU_ROOT);
    if (fs.existsSync(criuRoot)) while (native.detachMount(criuRoot));
  }

  /** The OCI state of a record in a status (status.ts tells the live one). */
  ociState(record: ContainerRecord, status: Status): OciState {
    return {
      ociVersion: record.ociVersion,
      id: record.id,
      pid: status === 'stopped' ? 0 : record.pid,
      status,
      bundle: record.bundle,
      rootfs: record.rootfs,
      created: record.created,
      owner: record.owner,
      // Left out when empty, as runc leaves it (runtime-spec: MAY be absent).
      ...(Object.keys(record.annotations ?? {}).length ? { annotations: record.annotations } : {}),
    };
  }
}
