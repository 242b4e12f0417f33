/**
 * A foreground `run` of a config with process.terminal and no
 * --console-socket: like runc, tsrun receives the pty master on a socket of
 * its own and copies between it and its own stdio, with the local
 * terminal in raw mode and its size passed on.
 */
import fs = require('fs');
import os = require('os');
import path = require('path');
import tty = require('tty');
import { removeTree } from './remove-tree';
import { native } from './native';
import { startCopy } from './stdio-pipes';

/**
 * A terminal of ours to attach a container's pty to: stderr, stdout or
 * stdin, else the controlling terminal (/dev/tty), as runc looks for one.
 * With none, runc fails at once rather than run a terminal nobody can
 * type into (a PID 1 that waits for input would ignore SIGTERM for good).
 */
export function hostTerminalProblem(): string | undefined {
  if ([2, 1, 0].some((fd) => tty.isatty(fd))) return undefined;
  try {
    fs.closeSync(fs.openSync('/dev/tty', fs.constants.O_RDWR | fs.constants.O_NOCTTY));
    return undefined;
  } catch (err) {
    return `no terminal to attach it to (stdin, stdout and stderr are not terminals, and /dev/tty: ${(err as NodeJS.ErrnoException).code ?? 'cannot be opened'}): give --console-socket, or set process.terminal to false`;
  }
}

export class ConsoleProxy {
  private readonly dir: string;
  readonly socketPath: string;
  private listenFd: number;
  private master = -1;
  private saved: Buffer | null = null;
  private finish?: () => Promise<void>;
  private onResize = (): void => this.resize();

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-console-'));
    this.socketPath = path.join(this.dir, 'console.sock');
    this.listenFd = native.listenUnix(this.socketPath);
  }

  /**
   * After create: take the master the container's init sent, and copy
   * between it and our stdio on a pool thread (native copyStdio, as the
   * foreground pipes are: no stream of the JavaScript engine's), with our
   * terminal raw and its size passed on.
   */
  attach(): void {
    const conn = native.acceptUnix(this.listenFd, 10_000);
    try {
      this.master = native.recvFd(conn, 10_000);
    } finally {
      native.close(conn);
    }
    // Our own terminal turns "\n" into "\r\n" already (runc clears it too).
    native.clearOnlcr(this.master);
    this.resize();
    process.on('SIGWINCH', this.onResize);
    this.saved = native.setRaw(0);
    this.finish = startCopy(native.dup(this.master), native.dup(this.master), -1, true);
  }

  /** The size of our terminal (stdout's, else stdin's) on the container's pty. */
  private resize(): void {
    if (this.master < 0) return;
    try {
      if (!native.copyWinsize(1, this.master)) native.copyWinsize(0, this.master);
    } catch {
      // the container may be gone
    }
  }

  /** Once the container has exited: copy what its pty still holds, then let go of everything. */
  async close(): Promise<void> {
    await this.finish?.();
    process.off('SIGWINCH', this.onResize);
    if (this.saved) native.restoreTerminal(0, this.saved);
    this.saved = null;
    if (this.master >= 0) native.close(this.master);
    this.master = -1;
    if (this.listenFd >= 0) native.close(this.listenFd);
    this.listenFd = -1;
    removeTree(this.dir);
  }
}
