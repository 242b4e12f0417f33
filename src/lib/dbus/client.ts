/**
 * A small synchronous D-Bus client over a unix socket: EXTERNAL
 * authentication, method calls, and waiting for a signal.  tsrun's verbs
 * are synchronous and short-lived, and the systemd cgroup manager makes a
 * handful of calls per verb; so this client spawns nothing (not busctl or
 * systemd-run, a process per call) and needs no event loop: it writes the
 * message and reads the answer on the same fd, with poll(2) bounding every
 * wait.  youki wrote its own client for the same reasons; the npm D-Bus
 * libraries are asynchronous, and dbus-next pulls in a dozen packages.
 */
import fs = require('fs');
import { TsrunError } from '../errors';
import { inUserNamespace } from '../host';
import { native } from '../native';
import { sleepSync } from '../sleep';
import { decodeMessage, type DBusValue, encodeMessage, type Message, MessageType, messageLength } from './wire';

/** An error reply: the D-Bus error name and its message. */
export class DBusError extends TsrunError {
  constructor(
    readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

export interface CallOptions {
  destination?: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: DBusValue[];
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 25_000; // libdbus's default reply timeout

export class DBusConnection {
  private serial = 0;
  private input = Buffer.alloc(0);
  /** Signals that arrived while a reply was awaited, oldest first. */
  private pending: Message[] = [];
  /** Our unique name on a bus (Hello's answer); undefined on a peer-to-peer socket. */
  uniqueName?: string;

  private constructor(
    private fd: number,
    readonly address: string,
  ) {}

  /**
   * Connect to the socket at `path` and authenticate as our uid.  `bus`:
   * a message bus (say Hello and get a name); otherwise a peer, such as
   * systemd's private socket.
   */
  static connect(path: string, opts: { bus: boolean; timeoutMs?: number }): DBusConnection {
    const fd = native.connectUnix(path);
    const conn = new DBusConnection(fd, path);
    try {
      conn.authenticate(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      if (opts.bus) {
        const reply = conn.call({
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'Hello',
          timeoutMs: opts.timeoutMs,
        });
        conn.uniqueName = reply.body[0] as string;
      }
      return conn;
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** The AUTH exchange and BEGIN, all within one `timeoutMs`. */
  private authenticate(timeoutMs: number): void {
    const deadline = Date.now() + timeoutMs;
    let line: string;
    if (inUserNamespace()) {
      // Our uid here is not the one the bus sees (the socket's credentials, in its own namespace): EXTERNAL
      // with no identity lets it take those (as sd-bus clients authenticate; runc asks busctl for the uid).
      this.write(Buffer.from('\0AUTH EXTERNAL\r\n', 'latin1'));
      line = this.readLine(deadline);
      if (line.startsWith('DATA')) {
        this.write(Buffer.from('DATA\r\n', 'latin1'));
        line = this.readLine(deadline);
      }
    } else {
      const uid = String(process.geteuid?.() ?? 0);
      this.write(Buffer.from(`\0AUTH EXTERNAL ${Buffer.from(uid).toString('hex')}\r\n`, 'latin1'));
      line = this.readLine(deadline);
    }
    if (!line.startsWith('OK ')) throw new TsrunError(`D-Bus ${this.address}: authentication refused (${line.trim()})`);
    this.write(Buffer.from('BEGIN\r\n', 'latin1'));
    this.awaitBeginRead(deadline);
  }

  /**
   * Wait until the peer has read our BEGIN, before any message follows it.
   * systemd's sd-bus server (252, Debian 12's) leaves a message that
   * arrives in the same read as BEGIN in its buffer without dispatching
   * it, until something else happens on the socket: a call written right
   * after BEGIN then went unanswered until we gave up and closed (seen
   * in the test VM, one create in a few dozen; every time when BEGIN and
   * the call go in one write).  A unix socket's bytes stay charged to us
   * until the peer has read them (SIOCOUTQ), so once none are left, BEGIN
   * was read alone and the first message wakes the server as any other.
   * The pauses start at 50 µs (the server reads it within a millisecond
   * when idle) and double up to 5 ms, so a busy server is asked at most
   * 200 times a second.
   */
  private awaitBeginRead(deadline: number): void {
    for (let pause = 0.05; native.unreadByPeer(this.fd) > 0; pause = Math.min(pause * 2, 5)) {
      if (Date.now() >= deadline) throw new TsrunError(`D-Bus ${this.address}: BEGIN not read in time`);
      sleepSync(pause);
    }
  }

  private readLine(deadline: number): string {
    for (;;) {
      const end = this.input.indexOf('\r\n');
      if (end >= 0) {
        const line = this.input.toString('latin1', 0, end);
        this.input = this.input.subarray(end + 2);
        return line;
      }
      this.fill(deadline);
    }
  }

  private write(buf: Buffer): void {
    for (let at = 0; at < buf.length;) at += fs.writeSync(this.fd, buf, at, buf.length - at);
  }

  /** Read what the socket has, waiting at most until the deadline; `awaited` names what for the error. */
  private fill(deadline: number, awaited = 'an answer'): void {
    const left = deadline - Date.now();
    if (left <= 0 || !native.waitReadable(this.fd, left))
      throw new TsrunError(`D-Bus ${this.address}: no ${awaited} in time`);
    const chunk = Buffer.alloc(65536);
    const n = fs.readSync(this.fd, chunk, 0, chunk.length, null);
    if (n === 0) throw new TsrunError(`D-Bus ${this.address}: the connection was closed`);
    this.input = Buffer.concat([this.input, chunk.subarray(0, n)]);
  }

  private nextMessage(deadline: number, awaited: string): Message {
    for (;;) {
      const length = messageLength(this.input);
      if (length && this.input.length >= length) {
        const message = decodeMessage(this.input.subarray(0, length));
        this.input = this.input.subarray(length);
        return message;
      }
      this.fill(deadline, awaited);
    }
  }

  /** Call a method and wait for its reply; an error reply throws DBusError. */
  call(c: CallOptions): Message {
    const serial = ++this.serial;
    this.write(
      encodeMessage({
        type: MessageType.METHOD_CALL,
        serial,
        destination: c.destination,
        path: c.path,
        interface: c.interface,
        member: c.member,
        signature: c.signature ?? '',
        body: c.body ?? [],
      }),
    );
    const deadline = Date.now() + (c.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    for (;;) {
      const m = this.nextMessage(deadline, `answer to ${c.member}`);
      if (m.type === MessageType.SIGNAL) {
        this.queue(m);
        continue;
      }
      if (m.replySerial !== serial) continue; // a reply to nothing we await
      if (m.type === MessageType.ERROR)
        throw new DBusError(m.errorName ?? 'error', `${c.member}: ${String(m.body[0] ?? m.errorName)}`);
      return m;
    }
  }

  /** The first signal `match` accepts, among those queued and those to come. */
  waitSignal(match: (m: Message) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS, what = 'signal'): Message {
    const queued = this.pending.findIndex(match);
    if (queued >= 0) return this.pending.splice(queued, 1)[0];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.nextMessage(deadline, what);
      if (m.type !== MessageType.SIGNAL) continue;
      if (match(m)) return m;
      this.queue(m);
    }
  }

  /** Keep a signal for a later waitSignal; a bus that broadcasts a lot loses its oldest ones first. */
  private queue(m: Message): void {
    this.pending.push(m);
    if (this.pending.length > 1000) this.pending.shift();
  }

  close(): void {
    if (this.fd >= 0) native.close(this.fd);
    this.fd = -1;
  }
}
