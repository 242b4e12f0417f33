/**
 * The stdio of a foreground `run` or `exec` without a terminal.  As runc
 * does (setupProcessPipes), the process gets pipes of its own and tsrun
 * copies between them and its own stdio; it never gets tsrun's fds.  So a
 * caller's terminal never reaches the container (a process holding it
 * could type into the caller's shell with TIOCSTI once it exits), nor a
 * caller's file (to reopen, truncate or hand on), and the pipes are the
 * process user's own (the helper gives anonymous pipes to it).  A detached
 * container, and create, inherit the caller's stdio, as runc's do.
 */
import fs = require('fs');
import { native } from './native';

/**
 * native.copyStdio running on its pool thread, with the pipe that tells it
 * the process has exited: finish() says so and waits for the copy to end
 * (drainOnStop: at once, with what is there; else once the outputs end).
 * The four fds given are the copy's to close.
 */
export function startCopy(
  stdinWrite: number,
  stdoutRead: number,
  stderrRead: number,
  drainOnStop: boolean,
): () => Promise<void> {
  const [stopRead, stopWrite] = native.pipe();
  const copying = native.copyStdio(stdinWrite, stdoutRead, stderrRead, stopRead, drainOnStop);
  let finished: Promise<void> | undefined;
  return () => {
    if (!finished) {
      native.close(stopWrite);
      finished = copying;
    }
    return finished;
  };
}

export class StdioPipes {
  /** The process's ends, for the helper: stdin's read end, stdout's and stderr's write ends. */
  readonly child: [number, number, number];
  /** Ours: stdin's write end, stdout's and stderr's read ends. */
  private readonly ours: [number, number, number];
  private childClosed = false;
  private finish?: () => Promise<void>;
  private closed = false;

  constructor() {
    const made: number[] = [];
    try {
      for (let i = 0; i < 3; i++) made.push(...native.pipe());
    } catch (err) {
      for (const fd of made) native.close(fd);
      throw err;
    }
    const [inR, inW, outR, outW, errR, errW] = made;
    this.child = [inR, outW, errW];
    this.ours = [inW, outR, errR];
  }

  /**
   * The process's ends to the host ids of the container's root, as runc
   * gives its pipes (setupIO): made by root on the host, they would be
   * owned by an id the container's user namespace does not map, which no
   * one in there may reopen (/dev/stdout) or give on to the process's user.
   */
  giveTo(uid: number, gid: number): void {
    for (const fd of this.child) fs.fchownSync(fd, uid, gid);
  }

  /**
   * Copy both ways from now on, on a pool thread (native copyStdio: no
   * stream of Node's is made, and our own fds stay as they are): before
   * create, as runc's copies start, so what the helper's hooks write
   * cannot fill a pipe nobody reads.
   */
  start(): void {
    this.finish = startCopy(this.ours[0], this.ours[1], this.ours[2], false);
  }

  /** Once the helper holds its copies of the process's ends: ours go, so the outputs end with the process. */
  launched(): void {
    if (this.childClosed) return;
    this.childClosed = true;
    for (const fd of this.child) native.close(fd);
  }

  /** After the process exited (or failed to start): wait until its output is all out (every writer gone); the pipes are closed then. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.launched();
    if (!this.finish) {
      for (const fd of this.ours) native.close(fd);
      return;
    }
    await this.finish(); // stops waiting for the process's stdin once its output ends
  }
}
