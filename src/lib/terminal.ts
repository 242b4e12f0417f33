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
  private stream?: tty.ReadStream;
  private rawMode = false;
  private onResize = (): void => this.resize();

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-console-'));
    this.socketPath = path.join(this.dir, 'console.sock');
    this.listenFd = native.listenUnix(this.socketPath);
  }

  /** After create: take the master the container's init sent, and start copying. */
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
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      this.rawMode = true;
    }
    this.stream = new tty.ReadStream(this.master);
    // EIO just means the container closed its side of the pty.
    this.stream.on('error', () => undefined);
    this.stream.on('data', (chunk: Buffer) => fs.writeSync(1, chunk));
    process.stdin.on('data', (chunk: Buffer) => this.stream?.write(chunk));
    process.stdin.on('error', () => undefined);
  }

  private resize(): void {
    if (this.master < 0 || !process.stdout.isTTY) return;
    try {
      native.setWinsize(this.master, process.stdout.rows, process.stdout.columns);
    } catch {
      // the container may be gone
    }
  }

  /** Once the container has exited: let pending output drain, then let go of everything. */
  async close(): Promise<void> {
    if (this.stream) {
      const stream = this.stream;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        stream.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      stream.destroy();
    }
    process.off('SIGWINCH', this.onResize);
    if (this.rawMode) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdin.destroy();
    if (this.listenFd >= 0) native.close(this.listenFd);
    this.listenFd = -1;
    removeTree(this.dir);
  }
}
