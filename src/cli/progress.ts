/**
 * The import progress bar: one line on stderr, redrawn in place, only when
 * stderr is a terminal.  Written with fs.writeSync like the rest of the
 * CLI's output (no process.stderr stream, which would change the fd's mode).
 */
import fs = require('fs');
import { isatty } from 'tty';
import type { ImportProgress } from '../lib/image/import';

const BAR_WIDTH = 24;
const REDRAW_MS = 100;

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

export function formatProgress(p: ImportProgress): string {
  const fraction = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : p.layersTotal > 0 ? p.layersDone / p.layersTotal : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  const what = p.phase === 'archive' ? 'reading archive' : `layers ${p.layersDone}/${p.layersTotal}`;
  return `${what} ${bar} ${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB`;
}

export interface ProgressBar {
  update(p: ImportProgress): void;
  /** Draw the last state and end the line. */
  finish(): void;
}

/** A bar on `fd`, or undefined when `fd` is not a terminal (nothing decorative in logs and pipes). */
export function progressBar(fd = 2): ProgressBar | undefined {
  if (!isatty(fd)) return undefined;
  let last: ImportProgress | undefined;
  let drawnAt = 0;
  const draw = (): void => {
    if (last) fs.writeSync(fd, `\r\x1b[K${formatProgress(last)}`);
    drawnAt = Date.now();
  };
  return {
    update(p) {
      last = { ...p };
      if (Date.now() - drawnAt >= REDRAW_MS || p.layersDone === p.layersTotal) draw();
    },
    finish() {
      if (!last) return;
      draw();
      fs.writeSync(fd, '\n');
    },
  };
}
