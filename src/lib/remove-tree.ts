/**
 * Every recursive removal tsrun makes: state directories, a container's
 * overlay upper, image layers, imports in progress.  What is in those trees
 * was shaped by a container or by image content, so the walk never follows
 * a symlink nor enters a mount point, even if the tree changes while it is
 * removed (native/remove.c says how).  Node's fs.rmSync walks by path and
 * would follow a directory swapped for a symlink to a host directory.
 */
import { describeFsError, TsrunError } from './errors';
import { native } from './native';

/** Remove `dir` and everything beneath it; a missing `dir` is fine. */
export function removeTree(dir: string): void {
  try {
    native.removeTree(dir);
  } catch (err) {
    const e = err as Error & { errno?: number };
    if (typeof e.errno === 'number') throw new TsrunError(e.message);
    throw new TsrunError(describeFsError(err, `remove ${dir}`));
  }
}
