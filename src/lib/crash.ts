/**
 * Named steps where the reliability tests kill tsrun (test/reliability/):
 * with TSRUN_TEST_CRASH_AT=<step> in its environment, tsrun sends itself
 * SIGKILL on reaching that step, as an engine's timeout would.  Whatever
 * the step, `state` must then say something true and `delete --force` must
 * leave nothing; the steps are placed where each kind of thing has been
 * made and not yet recorded, or recorded and not yet made.
 */
export type CrashStep =
  | 'create:claimed'
  | 'create:recorded'
  | 'create:rootfs'
  | 'create:cgroups'
  | 'create:cloned'
  | 'create:mounted'
  | 'create:launched'
  | 'create:saved'
  | 'start:released'
  | 'exec:cloned'
  | 'exec:launched'
  | 'image:cloned'
  | 'delete:killed'
  | 'delete:cgroups';

const target = process.env.TSRUN_TEST_CRASH_AT;

/** Whether a test asked for a crash at some step (start then keeps its own steps after the release). */
export function crashPointArmed(): boolean {
  return target !== undefined;
}

export function crashPoint(step: CrashStep): void {
  if (target === step) process.kill(process.pid, 'SIGKILL');
}
