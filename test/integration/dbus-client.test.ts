/**
 * tsrun's D-Bus client (src/lib/dbus/client.ts) against a real bus: a
 * private dbus-daemon this test starts on a socket of its own, so nothing
 * of the host's buses is touched.  Method calls, error replies, variants
 * and dicts from the daemon's properties, and signals.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { DBusConnection, DBusError } from '../../src/lib/dbus/client';
import { variant } from '../../src/lib/dbus/wire';
import { waitFor } from '../helpers';

const DAEMON = '/usr/bin/dbus-daemon';

if (!fs.existsSync(DAEMON)) {
  t.plan(0, 'dbus-daemon is not installed');
  process.exit(0);
}

const BUS = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' };

async function privateBus(t: { teardown(fn: () => void): void }): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-dbus-'));
  const socket = path.join(dir, 'bus');
  const daemon = spawn(DAEMON, ['--session', '--nofork', '--nopidfile', `--address=unix:path=${socket}`], {
    stdio: 'ignore',
  });
  t.teardown(() => {
    daemon.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // The socket file appears at bind(), a moment before listen(): wait until a connection is taken.
  const answers = (): boolean => {
    try {
      DBusConnection.connect(socket, { bus: true, timeoutMs: 2000 }).close();
      return true;
    } catch {
      return false;
    }
  };
  if (!(await waitFor(answers, 10_000))) throw new Error('dbus-daemon did not start');
  return socket;
}

t.test('Hello, a method call, and an error reply', async (t) => {
  const socket = await privateBus(t);
  const conn = DBusConnection.connect(socket, { bus: true, timeoutMs: 5000 });
  t.teardown(() => conn.close());
  t.match(conn.uniqueName, /^:1\.\d+$/, 'the bus named us');
  const names = conn.call({ ...BUS, member: 'ListNames' }).body[0] as string[];
  t.ok(names.includes('org.freedesktop.DBus') && names.includes(conn.uniqueName!), 'ListNames lists the bus and us');
  t.same(conn.call({ ...BUS, member: 'GetNameOwner', signature: 's', body: [conn.uniqueName!] }).body, [
    conn.uniqueName,
  ]);
  const err = t.throws(() =>
    conn.call({ ...BUS, member: 'GetNameOwner', signature: 's', body: ['org.example.nobody'] }),
  ) as unknown as DBusError;
  t.type(err, DBusError);
  t.equal(err.name, 'org.freedesktop.DBus.Error.NameHasNoOwner');
  t.equal(conn.call({ ...BUS, member: 'RequestName', signature: 'su', body: ['org.tsrun.Test', 0] }).body[0], 1);
});

t.test('properties: a dict of variants', async (t) => {
  const socket = await privateBus(t);
  const conn = DBusConnection.connect(socket, { bus: true, timeoutMs: 5000 });
  t.teardown(() => conn.close());
  const all = conn.call({
    ...BUS,
    interface: 'org.freedesktop.DBus.Properties',
    member: 'GetAll',
    signature: 's',
    body: ['org.freedesktop.DBus'],
  }).body[0] as Array<[string, { signature: string; value: unknown }]>;
  const features = all.find(([k]) => k === 'Features');
  t.ok(features, 'the bus has a Features property');
  t.equal(features![1].signature, 'as');
  // A variant sent back: UpdateActivationEnvironment takes a{ss}, the daemon answers ().
  t.same(
    conn.call({ ...BUS, member: 'UpdateActivationEnvironment', signature: 'a{ss}', body: [[['TSRUN', 'x']]] }).body,
    [],
  );
  t.ok(variant('b', true));
});

t.test('signals: AddMatch, then wait for one among others', async (t) => {
  const socket = await privateBus(t);
  const conn = DBusConnection.connect(socket, { bus: true, timeoutMs: 5000 });
  t.teardown(() => conn.close());
  conn.call({
    ...BUS,
    member: 'AddMatch',
    signature: 's',
    body: ["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"],
  });
  const other = DBusConnection.connect(socket, { bus: true, timeoutMs: 5000 });
  const otherName = other.uniqueName!;
  other.close();
  const gone = conn.waitSignal(
    (m) => m.member === 'NameOwnerChanged' && m.body[0] === otherName && m.body[2] === '',
    5000,
  );
  t.same(gone.body, [otherName, otherName, ''], 'the other connection came and went');
  t.throws(() => conn.waitSignal((m) => m.member === 'NeverSent', 200), /no signal in time/);
});

t.test('a socket nobody listens on is one clear error', async (t) => {
  t.throws(() => DBusConnection.connect('/nonexistent/tsrun-bus', { bus: true }), /connect/);
});

/**
 * A peer that, like systemd under load, reads late: it answers AUTH, then
 * waits before its next read(2), and reports what that one read held.
 * systemd 252's sd-bus leaves a message that comes in the same read as
 * BEGIN undispatched (client.ts, awaitBeginRead), so the client must not
 * write its first message until BEGIN has been read: the late read holds
 * BEGIN alone, and the call is still answered.
 */
const SLOW_PEER = `
const fs = require('fs');
const [native, wire, socket] = process.argv.slice(1).map((a, i) => (i < 2 ? require(a) : a));
const { encodeMessage, decodeMessage, messageLength, MessageType } = wire;
const listener = native.native.listenUnix(socket);
process.stdout.write('listening\\n');
const fd = native.native.acceptUnix(listener, 10000);
const chunk = Buffer.alloc(65536);
const read = () => chunk.subarray(0, fs.readSync(fd, chunk, 0, chunk.length, null));
let buf = Buffer.alloc(0);
while (!buf.includes('\\r\\n')) buf = Buffer.concat([buf, read()]);
fs.writeSync(fd, 'OK 0123456789abcdef0123456789abcdef\\r\\n');
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
buf = read();
process.stdout.write(JSON.stringify({ firstRead: buf.toString('latin1') }) + '\\n');
buf = buf.subarray(buf.indexOf('BEGIN\\r\\n') + 7);
while (!(messageLength(buf) && buf.length >= messageLength(buf))) buf = Buffer.concat([buf, read()]);
const call = decodeMessage(buf.subarray(0, messageLength(buf)));
fs.writeSync(fd, encodeMessage({ type: MessageType.METHOD_RETURN, serial: 1, replySerial: call.serial, signature: 's', body: ['pong'] }));
fs.readSync(fd, chunk, 0, 1, null);
`;

t.test('the first message waits until the peer has read BEGIN (sd-bus would leave it unread)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-dbus-'));
  const socket = path.join(dir, 'peer');
  const peer = spawn(
    process.execPath,
    ['-e', SLOW_PEER, require.resolve('../../src/lib/native'), require.resolve('../../src/lib/dbus/wire'), socket],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  peer.stdout.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(() => {
    peer.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  t.ok(await waitFor(() => out.includes('listening'), 10_000), 'the peer listens');
  const conn = DBusConnection.connect(socket, { bus: false, timeoutMs: 5000 });
  t.teardown(() => conn.close());
  const reply = conn.call({ destination: 'x.y', path: '/x', interface: 'x.y', member: 'Ping', timeoutMs: 5000 });
  t.same(reply.body, ['pong'], 'the call is answered');
  t.ok(await waitFor(() => out.includes('firstRead'), 5_000));
  const report = JSON.parse(out.split('\n').find((l) => l.includes('firstRead'))!);
  t.equal(report.firstRead, 'BEGIN\r\n', "the peer's late read held BEGIN alone, no message after it");
});
