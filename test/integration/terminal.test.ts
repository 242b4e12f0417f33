/**
 * process.terminal over --console-socket (runc-terminals.md): the engine
 * listens, tsrun's init sends the pty master with SCM_RIGHTS, the
 * container's stdio is the slave; plus the session keyring.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { native } from '../../src/lib/native';
import { cleanupContainer, drainPty, IS_ROOT, leftovers, makeBundle, tsrun, uniqueId } from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'integration tests need root');
  process.exit(0);
}

t.test('create --console-socket hands over the pty master; the container runs on the pty', async (t) => {
  const bundle = makeBundle(t, (c) => {
    c.process!.terminal = true;
    c.process!.consoleSize = { height: 31, width: 101 };
    c.process!.args = ['/bin/sh', '-c', 'stty size; tty; /bin/checker stat /dev/console'];
  });
  const id = uniqueId('tty');
  cleanupContainer(t, bundle.root, id);
  const socketPath = path.join(bundle.dir, 'console.sock');
  const listener = native.listenUnix(socketPath);
  t.teardown(() => native.close(listener));

  const created = tsrun(bundle.root, ['create', '-b', bundle.dir, '--console-socket', socketPath, id]);
  t.equal(created.status, 0, `create succeeds: ${created.stderr}`);
  const conn = native.acceptUnix(listener, 5_000);
  const master = native.recvFd(conn, 5_000);
  native.close(conn);
  t.ok(fs.readlinkSync(`/proc/self/fd/${master}`).includes('ptmx'), 'we received a pty master');

  t.equal(tsrun(bundle.root, ['start', id]).status, 0, 'start succeeds');
  const output = drainPty(master);
  fs.closeSync(master);
  const lines = output.split(/\r?\n/);
  t.equal(lines[0], '31 101', 'consoleSize reached the pty');
  t.match(lines[1], /^\/dev\/pts\/\d+$/, 'stdin is the pty slave');
  const consoleStat = JSON.parse(lines[2]);
  t.match(consoleStat, { type: 'c', major: 136 }, '/dev/console is the pty slave (devpts major 136)');

  t.equal(tsrun(bundle.root, ['delete', id]).status, 0, 'delete succeeds');
  t.same(leftovers(bundle, id), [], 'nothing left');
});

t.test('a terminal without --console-socket is refused at create, leaving nothing', async (t) => {
  const bundle = makeBundle(t, (c) => {
    c.process!.terminal = true;
  });
  const id = uniqueId('tty');
  const r = tsrun(bundle.root, ['create', '-b', bundle.dir, id]);
  t.not(r.status, 0);
  t.match(r.stderr, /^tsrun: create \S+: process\.terminal: .*--console-socket\n$/);
  t.same(leftovers(bundle, id), []);
});

t.test(
  'the container gets its own session keyring, named _ses.<id> as runc names it, unless --no-new-keyring',
  async (t) => {
    const bundle = makeBundle(t, () => {}, ['/bin/checker', 'read', '/proc/keys']);
    const id = uniqueId('keys');
    const own = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
    t.equal(own.status, 0, own.stderr);
    t.match(
      JSON.parse(own.stdout).content,
      new RegExp(`keyring\\s+_ses\\.${id}:`),
      'a session keyring named after the container',
    );
    const id2 = uniqueId('keys');
    const none = tsrun(bundle.root, ['run', '--no-new-keyring', '-b', bundle.dir, id2]);
    t.equal(none.status, 0, none.stderr);
    t.notMatch(JSON.parse(none.stdout).content, new RegExp(id2), 'no keyring of its own');
    t.same(leftovers(bundle, id), []);
  },
);
