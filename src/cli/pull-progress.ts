/**
 * The pull display, as docker draws one: a line per layer (its digest's
 * first 12 digits, what is happening to it, a bar while it downloads) and
 * a total line, redrawn in place on stderr when it is a terminal, at most
 * ten times a second.  A layer list taller than the terminal shows the
 * layers still under way, and the total counts the rest.  Nothing is drawn
 * into a pipe or a log.
 */
import fs = require('fs');
import { isatty } from 'tty';
import type { LayerProgress, PullProgress } from '../lib/image/pull';
import { native } from '../lib/native';

const REDRAW_MS = 100;
const BAR_WIDTH = 30;

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)}MB`;

function bar(done: number, total: number, width: number): string {
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : width;
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}]`;
}

const WORDS: Record<LayerProgress['state'], string> = {
  waiting: 'Waiting',
  downloading: 'Downloading',
  downloaded: 'Download complete',
  extracting: 'Extracting',
  complete: 'Pull complete',
  exists: 'Already exists',
  pushing: 'Pushing',
  pushed: 'Pushed',
  mounted: 'Mounted',
  remote: 'Layer already exists',
};

/** Done, as far as the total line counts. */
const FINISHED = new Set<LayerProgress['state']>(['complete', 'exists', 'pushed', 'mounted', 'remote']);
/** Moved no bytes: not in the total's amount. */
const UNMOVED = new Set<LayerProgress['state']>(['exists', 'mounted', 'remote']);

export function layerLine(l: LayerProgress): string {
  const head = `${l.digest.slice(7, 19)}: ${WORDS[l.state]}`;
  return l.state === 'downloading' || l.state === 'pushing'
    ? `${head} ${bar(l.done, l.size, BAR_WIDTH)} ${mb(l.done)}/${mb(l.size)}`
    : head;
}

export function totalLine(p: PullProgress): string {
  const moved = p.layers.filter((l) => !UNMOVED.has(l.state));
  const done = moved.reduce((sum, l) => sum + l.done, 0);
  const total = moved.reduce((sum, l) => sum + l.size, 0);
  const finished = p.layers.filter((l) => FINISHED.has(l.state)).length;
  return `${p.ref}: ${finished}/${p.layers.length} layers, ${mb(done)}/${mb(total)} ${bar(done, total, 20)}`;
}

/** The lines to draw within `rows` (the layers under way first when they do not all fit). */
export function pullLines(p: PullProgress, rows: number, columns: number): string[] {
  let layers = p.layers;
  if (layers.length > rows - 2) layers = layers.filter((l) => !FINISHED.has(l.state) && l.state !== 'waiting');
  layers = layers.slice(0, Math.max(0, rows - 2));
  return [...layers.map(layerLine), totalLine(p)].map((line) => line.slice(0, Math.max(1, columns - 1)));
}

export interface PullDisplay {
  update(p: PullProgress): void;
  finish(): void;
}

export function pullDisplay(fd = 2): PullDisplay | undefined {
  if (!isatty(fd)) return undefined;
  let last: PullProgress | undefined;
  let drawn = 0;
  let drawnAt = 0;
  const draw = (): void => {
    if (!last) return;
    const [columns, rows] = native.terminalSize(fd);
    const lines = pullLines(last, rows || 24, columns || 80);
    fs.writeSync(fd, `${drawn ? `\r\x1b[${drawn}A` : '\r'}\x1b[J${lines.join('\n')}\n`);
    drawn = lines.length;
    drawnAt = Date.now();
  };
  return {
    update(p) {
      last = p;
      if (Date.now() - drawnAt >= REDRAW_MS) draw();
    },
    finish: draw,
  };
}
