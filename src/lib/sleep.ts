/**
 * Block this thread for a while.  The verbs run synchronously from start
 * to end, so the waits of their retry loops (an EBUSY rmdir or unmount, a
 * refused clone, a process still exiting) sleep here instead of spinning.
 */
const cell = new Int32Array(new SharedArrayBuffer(4));

export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}
