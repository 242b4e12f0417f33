/**
 * The one placement decision (src/lib/cgroup/placement.ts): how a new
 * process gets into the container's cgroups, for each kind of host and
 * process.  No root: it is pure.
 */
import t from 'tap';
import { placeProcess } from '../../src/lib/cgroup/placement';

const V1 = ['/sys/fs/cgroup/memory/c1', '/sys/fs/cgroup/pids/c1'];

t.test('a unified host: cloned straight into the cgroup2 directory', async (t) => {
  t.same(placeProcess({ joins: [], cloneInto: '/sys/fs/cgroup/c1' }, false), {
    helperJoins: [],
    cloneInto: '/sys/fs/cgroup/c1',
    parentMoves: false,
  });
});

t.test('a hybrid host: the helper joins each v1 hierarchy through tasks, then the clone goes to cgroup2', async (t) => {
  t.same(placeProcess({ joins: V1, cloneInto: '/sys/fs/cgroup/unified/c1' }, false), {
    helperJoins: V1.map((dir) => ({ dir, file: 'tasks' })),
    cloneInto: '/sys/fs/cgroup/unified/c1',
    parentMoves: false,
  });
});

t.test('in a user namespace no host cgroup can be cloned into: the helper joins cgroup2 first too', async (t) => {
  t.same(placeProcess({ joins: V1, cloneInto: '/sys/fs/cgroup/unified/c1' }, true), {
    helperJoins: [
      ...V1.map((dir) => ({ dir, file: 'tasks' })),
      { dir: '/sys/fs/cgroup/unified/c1', file: 'cgroup.procs' },
    ],
    cloneInto: '',
    parentMoves: false,
  });
});

t.test('a legacy host: v1 joins alone', async (t) => {
  t.same(placeProcess({ joins: V1 }, true), {
    helperJoins: V1.map((dir) => ({ dir, file: 'tasks' })),
    cloneInto: '',
    parentMoves: false,
  });
});

t.test('nothing offered (an exec into a paused container): the parent moves the helper first', async (t) => {
  t.same(placeProcess(undefined, false), { helperJoins: [], cloneInto: '', parentMoves: true });
  t.same(placeProcess(undefined, true), { helperJoins: [], cloneInto: '', parentMoves: true });
});
