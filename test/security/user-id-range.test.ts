/**
 * Issue 14, finding 4: a uid or gid of 4294967295 ran as root.  To
 * setresuid, setresgid and setgroups (uid_t)-1 means "leave unchanged", so
 * process.user 4294967295, exec --user 4294967295:4294967295 and
 * run --image --user 4294967295 all ended as uid 0, and 1000:4294967295
 * as gid 0.  runc refuses anything outside 0-2147483647 ("uids and gids
 * must be in range 0-2147483647"), and so does tsrun now, on every path a
 * user comes in by, with an error naming the field or flag and nothing
 * left behind:
 *  - config.json process.user.uid, .gid, .additionalGids (run);
 *  - exec --user UID, --user UID:GID, --additional-gids; exec --process;
 *  - an image's User (numeric, and a name its /etc/passwd maps past the
 *    range) and run --image --user;
 *  - the helper itself, handed such a plan directly: it refuses before any
 *    credential change.
 * 2147483647 itself stays valid (runc accepts it too).
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { native, INIT_HELPER } from '../../src/lib/native';
import { encodePlan, Op, type PlanOp } from '../../src/lib/plan-format';
import { receive, send, Sync } from '../../src/lib/sync';
import { cleanupContainer, IS_ROOT, leftovers, makeBundle, tarOf, tempDir, tsrun, uniqueId } from '../helpers';
import { baseLayer, dockerArchive, image, imageOf } from '../image-helpers';
import { runningContainer } from '../security-helpers';

if (!IS_ROOT) {
  t.plan(0, 'security tests need root');
  process.exit(0);
}

const RANGE = /out of range: uids and gids must be in range 0-2147483647\n$/;
const HIGH = 4294967295;

t.test(
  'config.json: process.user past 2147483647 is refused, naming the field; nothing runs, nothing is left',
  async (t) => {
    const cases: Array<[string, { uid: number; gid: number; additionalGids?: number[] }, string]> = [
      ['uid 4294967295', { uid: HIGH, gid: 0 }, 'process.user.uid'],
      ['gid 4294967295', { uid: 1000, gid: HIGH }, 'process.user.gid'],
      ['both 4294967295', { uid: HIGH, gid: HIGH }, 'process.user.uid'],
      ['uid 2147483648', { uid: 2 ** 31, gid: 0 }, 'process.user.uid'],
      [
        'additional gid 4294967295',
        { uid: 1000, gid: 1000, additionalGids: [10, HIGH] },
        'process.user.additionalGids[1]',
      ],
    ];
    for (const [what, user, field] of cases) {
      const bundle = makeBundle(t, (c) => (c.process!.user = user), ['/bin/id']);
      const id = uniqueId('uid');
      cleanupContainer(t, bundle.root, id);
      const r = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
      t.not(r.status, 0, `${what}: refused`);
      t.notMatch(r.stdout, /uid=/, `${what}: the process never ran`);
      t.match(
        r.stderr,
        new RegExp(`^tsrun: run ${id}: ${field.replace(/[[\]]/g, '\\$&')}: `),
        `${what}: names ${field}: ${r.stderr.trim()}`,
      );
      t.match(r.stderr, RANGE, `${what}: gives runc's range`);
      t.same(leftovers(bundle, id), [], `${what}: nothing left`);
    }
    const ok = makeBundle(t, (c) => (c.process!.user = { uid: 2147483647, gid: 2147483647 }), ['/bin/id', '-u']);
    const id = uniqueId('uidmax');
    cleanupContainer(t, ok.root, id);
    const r = tsrun(ok.root, ['run', '-b', ok.dir, id]);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, '2147483647\n', '2147483647 itself runs as that uid');
  },
);

t.test('exec: --user, --additional-gids and --process past the range are refused, nothing is started', async (t) => {
  const { bundle, id, initPid } = runningContainer(t, () => {}, ['/bin/sleep', '1000']);
  const procs = (): string =>
    fs.readFileSync(path.join('/proc', String(initPid), 'task', String(initPid), 'children'), 'utf8');
  const flagCases: Array<[string[], RegExp]> = [
    [['--user', String(HIGH)], /--user: 4294967295 /],
    [['--user', `0:${HIGH}`], /--user: 4294967295 /],
    [['--user', `${HIGH}:${HIGH}`], /--user: 4294967295 /],
    [['--user', `1000:${2 ** 31}`], /--user: 2147483648 /],
    [['--additional-gids', String(HIGH)], /--additional-gids: 4294967295 /],
  ];
  for (const [flags, names] of flagCases) {
    const r = tsrun(bundle.root, ['exec', ...flags, id, '/bin/id']);
    t.not(r.status, 0, `${flags.join(' ')}: refused`);
    t.notMatch(r.stdout, /uid=/, `${flags.join(' ')}: nothing ran`);
    t.match(r.stderr, names, `${flags.join(' ')}: names the flag: ${r.stderr.trim()}`);
    t.match(r.stderr, RANGE);
  }
  const file = path.join(bundle.dir, 'process.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ args: ['/bin/id'], cwd: '/', env: ['PATH=/bin'], user: { uid: HIGH, gid: HIGH } }),
  );
  const p = tsrun(bundle.root, ['exec', '--process', file, id]);
  t.not(p.status, 0, '--process: refused');
  t.match(p.stderr, new RegExp(`--process ${file}: process.user.uid: 4294967295 is ${RANGE.source}`));
  t.equal(procs().trim(), '', 'no exec process was left in the container');
  const max = tsrun(bundle.root, ['exec', '--user', '2147483647:2147483647', id, '/bin/id', '-u']);
  t.equal(max.stdout, '2147483647\n', `2147483647 is still accepted: ${max.stderr}`);
});

t.test('images: a User past the range, by number or through the image passwd, and --user, are refused', async (t) => {
  const work = tempDir(t, 'tsrun-uidimg-');
  const store = path.join(work, 'store');
  const passwd = await tarOf([
    { name: 'etc/', type: 'directory', mode: 0o755 },
    {
      name: 'etc/passwd',
      type: 'file',
      content: `root:x:0:0:root:/root:/bin/sh\nghost:x:${HIGH}:${HIGH}::/:/bin/sh\n`,
    },
  ]);
  for (const [tag, user] of [
    ['numeric', String(HIGH)],
    ['named', 'ghost'],
    ['group', `0:${HIGH}`],
  ]) {
    fs.writeFileSync(
      path.join(work, `${tag}.tar`),
      await dockerArchive(imageOf([baseLayer(), passwd], { Cmd: ['/bin/id'], User: user }), `uid/${tag}:1`),
    );
    t.equal(image(store, ['import', path.join(work, `${tag}.tar`)]).status, 0);
  }
  const root = path.join(work, 'state');
  for (const tag of ['numeric', 'named', 'group']) {
    const id = uniqueId(`uidimg-${tag}`);
    cleanupContainer(t, root, id);
    const r = tsrun(root, ['run', '--image', `uid/${tag}:1`, '--store', store, id]);
    t.not(r.status, 0, `image User (${tag}): refused`);
    t.match(
      r.stderr,
      new RegExp(`^tsrun: run ${id}: image config User: .* 4294967295, which is ${RANGE.source}`),
      `image User (${tag}): ${r.stderr.trim()}`,
    );
    t.notOk(fs.existsSync(path.join(root, id)), 'no state left');
  }
  fs.writeFileSync(
    path.join(work, 'plain.tar'),
    await dockerArchive(imageOf([baseLayer()], { Cmd: ['/bin/id'] }), 'uid/plain:1'),
  );
  t.equal(image(store, ['import', path.join(work, 'plain.tar')]).status, 0);
  for (const flag of [String(HIGH), `1000:${HIGH}`]) {
    const id = uniqueId('uidflag');
    cleanupContainer(t, root, id);
    const r = tsrun(root, ['run', '--image', 'uid/plain:1', '--store', store, '--user', flag, id]);
    t.not(r.status, 0, `--user ${flag}: refused`);
    t.match(r.stderr, new RegExp(`--user: .* 4294967295, which is ${RANGE.source}`), r.stderr.trim());
    t.same(fs.readdirSync(path.join(store, 'containers')), [], 'no upper made');
  }
});

t.test('the helper refuses such a user by itself, before any credential change', async (t) => {
  const bundleDir = tempDir(t, 'tsrun-uidplan-');
  const marker = path.join(bundleDir, 'ran');
  for (const [uid, gid, groups] of [
    [HIGH, 0, []],
    [0, HIGH, []],
    [1000, 1000, [HIGH]],
    [2 ** 31, 0, []],
  ] as Array<[number, number, number[]]>) {
    const ops: PlanOp[] = [
      { op: Op.USER, fields: { uid, gid, umask: 0o22, groups } },
      { op: Op.CHDIR, fields: { cwd: '/', stage: 0 } },
      { op: Op.EXEC_PREPARE, fields: { name: '/bin/touch', argv: ['/bin/touch', marker], env: [] } },
      { op: Op.EXEC, fields: {} },
    ];
    const { pid, syncFd } = native.spawnInit(INIT_HELPER, encodePlan(ops), -1, -1, -1, 0, null);
    try {
      send(syncFd, Sync.CONTINUE);
      const msg = receive(syncFd, 10_000);
      t.equal(msg.type, Sync.ERROR, `uid ${uid} gid ${gid} groups ${groups}: the helper reports an error`);
      if (msg.type === Sync.ERROR)
        t.match(msg.failure.detail, /uids and gids must be in range 0-2147483647/, msg.failure.detail);
    } finally {
      native.close(syncFd);
      native.waitPid(pid, false);
    }
    t.notOk(fs.existsSync(marker), 'the program never ran');
  }
});
