/**
 * A launched process's plumbing, shared by create, run and exec: the pid
 * file engines poll for, the engine's console socket, and waiting for a
 * process in the foreground while our signals are forwarded to it.
 */
import fs = require('fs');
import path = require('path');
import { describeFsError, TsrunError } from './errors';
import { native } from './native';

/**
 * The pid file is written whole or not at all, as engines poll for it: a
 * temp file beside it, renamed over it (rename replaces a symlink there,
 * never what it points to).  The temp file is made with O_EXCL|O_NOFOLLOW
 * under a name nobody can guess: a predictable name opened without them
 * let anyone who can write the pid file's directory plant a symlink there
 * and have root truncate and overwrite any file.  runc's fixed temp name
 * with O_EXCL fails while a stale one exists; here another name is tried.
 */
export function writePidFile(file: string, pid: number): void {
  const abs = path.resolve(file);
  let tmp = '';
  let fd = -1;
  try {
    for (let attempt = 1; fd < 0; attempt++) {
      const name = `.${path.basename(abs)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`;
      try {
        fd = fs.openSync(path.join(path.dirname(abs), name), PID_FILE_FLAGS, 0o644);
        tmp = path.join(path.dirname(abs), name);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt === 10) throw err;
      }
    }
    fs.writeSync(fd, String(pid));
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, abs);
  } catch (err) {
    if (fd >= 0) fs.closeSync(fd);
    if (tmp) fs.rmSync(tmp, { force: true }); // only ever the file we made
    throw new TsrunError(describeFsError(err, `pid file ${abs}`));
  }
}

const PID_FILE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * What a process's fds 0-2 are, as /proc names them ("pipe:[123]",
 * "/dev/pts/0", "/dev/null"): recorded for the container's init (state.ts,
 * stdio), which checkpoint needs.
 */
export function stdioTargets(pid: number): string[] {
  return [0, 1, 2].map((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '/dev/null';
    }
  });
}

/** Connect to an engine's --console-socket. */
export function connectConsole(socketPath: string): number {
  try {
    return native.connectUnix(socketPath);
  } catch (err) {
    throw new TsrunError(
      `--console-socket ${socketPath}: ${native.strerror((err as { errno: number }).errno).toLowerCase()}`,
    );
  }
}

/** Signals `run` forwards to the container while attached, as runc does. */
const FORWARDED_SIGNALS: NodeJS.Signals[] = [
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGTERM',
  'SIGUSR1',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGCONT',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGWINCH',
  'SIGVTALRM',
  'SIGPROF',
  'SIGIO',
  'SIGPWR',
  'SIGSYS',
];

/**
 * Wait for a process of ours while forwarding our signals to it (not
 * SIGWINCH with a terminal: the size travels through the pty).  Resolves
 * to its exit status, 128+N for a signal, like a shell.
 */
export async function waitAttached(pid: number, withTerminal: boolean): Promise<number> {
  const forward = (signal: NodeJS.Signals): void => {
    try {
      process.kill(pid, signal);
    } catch {
      // it has just exited
    }
  };
  const forwarded = FORWARDED_SIGNALS.filter((s) => !(withTerminal && s === 'SIGWINCH'));
  for (const s of forwarded) process.on(s, forward);
  try {
    const result = await native.waitPidAsync(pid);
    return result.code ?? 128 + (result.signal ?? 0);
  } finally {
    for (const s of forwarded) process.off(s, forward);
  }
}
