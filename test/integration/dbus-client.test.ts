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
