/**
 * The import progress bar: one line on stderr, redrawn in place, only when
 * stderr is a terminal, at most ten times a second, and never wider than
 * the terminal (a line that wraps leaves a copy behind at every redraw).
 * Written with fs.writeSync like the rest of the CLI's output (no
 * process.stderr stream, which would change the fd's mode).  About 60
 * lines of our own: the bars npm tools use (progress, cli-progress) write
 * through process.stderr, which is what this avoids.
 */
import fs = require('fs');
import { isatty } from 'tty';
import type { ImportProgress } from '../lib/image/import';
import { native } from '../lib/native';

const BAR_WIDTH = 24;
const REDRAW_MS = 100;

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

/** The line for `p`, at most `columns - 1` characters (the last column would wrap on some terminals). */
export function formatProgress(p: ImportProgress, columns = 80): string {
  const fraction =
    p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : p.layersTotal > 0 ? p.layersDone / p.layersTotal : 0;
  const what = p.phase === 'archive' ? 'reading archive' : `layers ${p.layersDone}/${p.layersTotal}`;
  const amount = `${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB`;
  const room = columns - 1 - what.length - amount.length - 4; // two spaces and the brackets
  const width = Math.min(BAR_WIDTH, room);
  if (width < 5) return `${what} ${amount}`.slice(0, Math.max(0, columns - 1));
  const filled = Math.round(fraction * width);
  return `${what} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${amount}`;
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
  let layersDrawn = -1;
  const draw = (): void => {
    // The width is read at each redraw: the terminal may be resized meanwhile.
    if (last) fs.writeSync(fd, `\r\x1b[K${formatProgress(last, native.terminalSize(fd)[0] || 80)}`);
    drawnAt = Date.now();
    layersDrawn = last?.layersDone ?? -1;
  };
  return {
    update(p) {
      last = { ...p };
      // At most ten a second; the last layer's end is drawn at once.  (Every
      // chunk of an archive, whose phase has no layers, used to be drawn.)
      const allDone =
        p.phase === 'layers' && p.layersTotal > 0 && p.layersDone === p.layersTotal && layersDrawn !== p.layersDone;
      if (Date.now() - drawnAt >= REDRAW_MS || allDone) draw();
    },
    finish() {
      if (!last) return;
      draw();
      fs.writeSync(fd, '\n');
    },
  };
}
