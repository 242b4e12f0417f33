/**
 * What a create or an exec has made, and how to take it back.  Each
 * provisioning step registers its own undo as it succeeds (the state
 * directory, the image's rootfs, the cgroups, the launched process, the
 * moved net devices), so a failure at any later step undoes exactly what
 * was made, newest first; and its own release (an fd, a lock), which runs
 * whether the whole succeeded or not.  runc's parentProcess keeps the same
 * discipline in its init and setns variants.
 */
import { warn } from './log';

interface Step {
  what: string;
  run: () => void;
}

export class Rollback {
  private undos: Step[] = [];
  private releases: Step[] = [];

  /** On failure, `undo` takes back what `what` made. */
  onFailure(what: string, undo: () => void): void {
    this.undos.push({ what, run: undo });
  }

  /** Whatever happens, `release` lets go of what `what` holds. */
  always(what: string, release: () => void): void {
    this.releases.push({ what, run: release });
  }

  /**
   * The work failed: run every undo, newest first.  An undo that fails is
   * warned about and the others still run: the caller reports the work's
   * own error, which is the one the user can act on.
   */
  unwind(): void {
    for (const step of this.undos.splice(0).reverse()) runWarned(step);
  }

  /** The work is done: nothing of it is to be undone any more. */
  commit(): void {
    this.undos = [];
  }

  /** Run every release, newest first (after unwind, on failure). */
  release(): void {
    for (const step of this.releases.splice(0).reverse()) runWarned(step);
  }

  /** What is registered, newest last: for tests and --debug. */
  pending(): { undo: string[]; release: string[] } {
    return { undo: this.undos.map((s) => s.what), release: this.releases.map((s) => s.what) };
  }
}

function runWarned(step: Step): void {
  try {
    step.run();
  } catch (err) {
    warn(`${step.what}: ${(err as Error).message}`);
  }
}
