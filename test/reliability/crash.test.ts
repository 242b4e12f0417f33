/**
 * tsrun killed with SIGKILL at each named step of create, start, exec and
 * delete (TSRUN_TEST_CRASH_AT, src/lib/crash.ts), as an engine's timeout
 * would: afterwards `state` says something true, `delete --force` succeeds,
 * and nothing is left: no process, cgroup (in any hierarchy), mount (the
 * image overlay too), state dir or container rootfs in the image store.
 * A create killed before it recorded anything leaves nothing that stops a
 * new create of the same id.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { BuiltPlugins, Test } from '@tapjs/test';
import t from 'tap';
import {
  alive,
  cleanupContainer,
  IS_ROOT,
  leftovers,
  makeBundle,
  tempDir,
  tsrun,
  uniqueId,
  waitFor,
  type Bundle,
} from '../helpers';
import type { Config } from '../../src/lib/config';
import { baseLayer, dockerArchive, image, imageOf } from '../image-helpers';

if (!IS_ROOT) {
  t.plan(0, 'crash tests need root');
  process.exit(0);
}

const crashAt = (step: string): { env: Record<string, string> } => ({ env: { TSRUN_TEST_CRASH_AT: step } });

/** What `state` says now: a status, or "none" when the container does not exist. */
function stateOf(bundle: Bundle, id: string): string {
  const r = tsrun(bundle.root, ['state', id]);
  if (r.status !== 0) {
    if (/does not exist/.test(r.stderr)) return 'none';
    throw new Error(`state: ${r.stderr}`);
  }
  return JSON.parse(r.stdout).status as string;
}

/** delete --force cleans up, then nothing of the container is left. */
async function cleansUp(t: Test & BuiltPlugins, bundle: Bundle, id: string, store?: string): Promise<void> {
  const d = tsrun(bundle.root, ['delete', '--force', id]);
  t.equal(d.status, 0, `delete --force: ${d.stderr}`);
  t.ok(
    await waitFor(() => leftovers(bundle, id).length === 0, 10_000),
    `nothing left: ${leftovers(bundle, id).join(', ')}`,
  );
  if (store) t.same(fs.readdirSync(path.join(store, 'containers')), [], 'no container rootfs left in the store');
}

const sleeper = ['sleep', '300'];

/** A createRuntime hook makes the init stop for the parent once its mounts are made (create:mounted). */
const withHook = (c: Config): void => {
  c.hooks = { createRuntime: [{ path: '/bin/true' }] };
};

for (const [step, expected] of [
  ['create:claimed', ['none']],
  ['create:recorded', ['stopped']],
  ['create:cgroups', ['stopped']],
  ['create:cloned', ['stopped']],
  ['create:mounted', ['stopped']],
  ['create:launched', ['stopped']],
  ['create:saved', ['created']],
] as const) {
  t.test(`killed at ${step}`, async (t) => {
    const bundle = makeBundle(t, withHook, sleeper);
    const id = uniqueId('crash');
    cleanupContainer(t, bundle.root, id);
    const r = tsrun(bundle.root, ['create', '-b', bundle.dir, id], crashAt(step));
    t.equal(r.signal, 'SIGKILL', `tsrun died at ${step}`);
    t.ok(
      (expected as readonly string[]).includes(stateOf(bundle, id)),
      `state says ${stateOf(bundle, id)}, which is true`,
    );
    t.equal(tsrun(bundle.root, ['list', '-q']).stdout, expected[0] === 'none' ? '' : `${id}\n`, 'list agrees');
    // Where nothing was recorded, nothing is left once the containers are listed.
    if (expected[0] === 'none') t.same(leftovers(bundle, id), [], 'list took the abandoned claim');
    await cleansUp(t, bundle, id);
    const again = tsrun(bundle.root, ['create', '-b', bundle.dir, id]);
    t.equal(again.status, 0, `the id can be created again: ${again.stderr}`);
    await cleansUp(t, bundle, id);
  });
}

t.test('a create killed before it recorded anything does not block the id', async (t) => {
  const bundle = makeBundle(t, () => {}, sleeper);
  const id = uniqueId('crash');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['create', '-b', bundle.dir, id], crashAt('create:claimed')).signal, 'SIGKILL');
  t.ok(fs.existsSync(path.join(bundle.root, id)), 'its claim is there');
  const again = tsrun(bundle.root, ['create', '-b', bundle.dir, id]);
  t.equal(again.status, 0, `and is taken over: ${again.stderr}`);
  t.equal(stateOf(bundle, id), 'created');
  await cleansUp(t, bundle, id);
});

t.test('killed at start:released: the container runs, state says so', async (t) => {
  const bundle = makeBundle(t, () => {}, sleeper);
  const id = uniqueId('crash');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['create', '-b', bundle.dir, id]).status, 0);
  t.equal(tsrun(bundle.root, ['start', id], crashAt('start:released')).signal, 'SIGKILL');
  t.ok(await waitFor(() => stateOf(bundle, id) === 'running', 5_000), 'running');
  await cleansUp(t, bundle, id);
});

for (const step of ['exec:cloned', 'exec:launched']) {
  t.test(`killed at ${step}: the exec'd process is the container's, and goes with it`, async (t) => {
    const bundle = makeBundle(t, () => {}, sleeper);
    const id = uniqueId('crash');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
    t.equal(tsrun(bundle.root, ['exec', '-d', id, 'sleep', '301'], crashAt(step)).signal, 'SIGKILL');
    t.equal(stateOf(bundle, id), 'running');
    const again = tsrun(bundle.root, ['exec', id, 'true']);
    t.equal(again.status, 0, `the container's lock is free again: ${again.stderr}`);
    await cleansUp(t, bundle, id);
  });
}

for (const step of ['delete:killed', 'delete:cgroups']) {
  t.test(`killed at ${step}`, async (t) => {
    const bundle = makeBundle(t, () => {}, sleeper);
    const id = uniqueId('crash');
    cleanupContainer(t, bundle.root, id);
    t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
    const pid = JSON.parse(tsrun(bundle.root, ['state', id]).stdout).pid as number;
    t.equal(tsrun(bundle.root, ['delete', '--force', id], crashAt(step)).signal, 'SIGKILL');
    t.ok(await waitFor(() => !alive(pid), 5_000), 'the init is gone');
    t.equal(stateOf(bundle, id), 'stopped');
    await cleansUp(t, bundle, id);
  });
}

t.test('an image container: its overlay and upper go too, whatever the step', async (t) => {
  const work = tempDir(t, 'tsrun-crash-');
  const store = path.join(work, 'store');
  fs.writeFileSync(path.join(work, 'i.tar'), await dockerArchive(imageOf([baseLayer()], { Cmd: sleeper }), 'crash:1'));
  t.equal(image(store, ['import', path.join(work, 'i.tar')]).status, 0);
  for (const step of [
    'create:rootfs',
    'create:cloned',
    'create:launched',
    'create:saved',
    'delete:killed',
    'delete:cgroups',
  ]) {
    const bundle: Bundle = {
      dir: path.join(work, `b-${step.replace(':', '-')}`),
      rootfs: '',
      config: {} as Bundle['config'],
      root: path.join(work, 'state'),
    };
    t.equal(tsrun(bundle.root, ['bundle', '--store', store, 'crash:1', bundle.dir]).status, 0);
    const id = uniqueId('crash');
    cleanupContainer(t, bundle.root, id);
    if (step.startsWith('delete:')) {
      t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
      t.equal(tsrun(bundle.root, ['delete', '--force', id], crashAt(step)).signal, 'SIGKILL', step);
    } else {
      t.equal(tsrun(bundle.root, ['create', '-b', bundle.dir, id], crashAt(step)).signal, 'SIGKILL', step);
    }
    t.match(stateOf(bundle, id), /^(stopped|created)$/, `${step}: state says ${stateOf(bundle, id)}`);
    await cleansUp(t, bundle, id, store);
  }
});
