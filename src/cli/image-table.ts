/**
 * `tsrun image ls`: docker's table (REPOSITORY, TAG, IMAGE ID, CREATED,
 * SIZE), with the store's canonical names as podman shows them, `<none>`
 * for an image kept under its ID alone, the age of the image's config
 * `created` (not of the import), and the layers' unpacked size.
 */
import fs = require('fs');
import path = require('path');
import { parseReference, repositoryOf } from '../lib/image/reference';
import { type ImageRecord, type ImageStore, isUnnamed } from '../lib/image/store';

/** docker's units.HumanDuration: "About a minute", "3 weeks", ... */
export function humanDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return plural(Math.floor(h / 24), 'day');
  if (h < 24 * 30 * 2) return plural(Math.floor(h / 24 / 7), 'week');
  if (h < 24 * 365 * 2) return plural(Math.floor(h / 24 / 30), 'month');
  return plural(Math.floor(h / 24 / 365), 'year');
}

/** docker's units.HumanSize: decimal units, three significant digits ("4.26MB"). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let n = bytes;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(3))}${units[i]}`;
}

/** The apparent size of a layer directory's regular files (its unpacked content), walked without following a link. */
function treeSize(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += treeSize(p);
    else if (e.isFile()) total += fs.lstatSync(p).size;
  }
  return total;
}

/** REPOSITORY and TAG of a store name: "docker.io/library/busybox:latest", "x@sha256:...", or an ID. */
function repositoryAndTag(name: string): [string, string] {
  if (isUnnamed(name)) return ['<none>', '<none>'];
  const ref = parseReference(name);
  return [repositoryOf(ref), ref.tag ?? '<none>'];
}

/** docker history's table, newest first: IMAGE (the image's ID on the top row), CREATED, CREATED BY, SIZE, COMMENT. */
export function historyTable(store: ImageStore, ref: string, now = Date.now()): string {
  const { image: img } = store.resolve(ref);
  const config = JSON.parse(store.readBlob(img.config).toString('utf8'));
  // Image content: anything but an object is skipped, and text reaches the terminal without control characters.
  const history: Array<Record<string, unknown>> = Array.isArray(config.history)
    ? config.history.filter((h: unknown) => h !== null && typeof h === 'object')
    : [];
  const text = (v: unknown): string =>
    // eslint-disable-next-line no-control-regex -- control characters are what it removes
    typeof v === 'string' ? v.replace(/\s+/g, ' ').replace(/[\x00-\x1f\x7f-\x9f]/g, '?') : '';
  // Each entry that is not an empty layer made the next layer, lowest first.
  let layer = 0;
  const rows = history.map((h) => {
    const size = h.empty_layer === true ? 0 : img.layers[layer] ? treeSize(store.layerPath(img.layers[layer++])) : 0;
    const when = typeof h.created === 'string' ? Date.parse(h.created) : NaN;
    return [
      Number.isNaN(when) ? 'N/A' : `${humanDuration((now - when) / 1000)} ago`,
      text(h.created_by),
      humanSize(size),
      text(h.comment),
    ];
  });
  // Layers the history does not account for (an image built without one).
  for (; layer < img.layers.length; layer++)
    rows.push(['N/A', '', humanSize(treeSize(store.layerPath(img.layers[layer]))), '']);
  rows.reverse();
  return columns([
    ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
    ...rows.map((r, i) => [i === 0 ? img.config.slice(7, 19) : '<missing>', ...r]),
  ]);
}

/** Rows in columns three spaces apart, as docker's tabwriter sets them; the last column unpadded. */
function columns(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)) + 3);
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i])))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function imageTable(store: ImageStore, now = Date.now()): string {
  const images = Object.entries(store.images()).sort(([a], [b]) => a.localeCompare(b));
  const layerSizes = new Map<string, number>();
  const sizeOf = (img: ImageRecord): number =>
    img.layers.reduce((sum, diffID) => {
      if (!layerSizes.has(diffID)) layerSizes.set(diffID, treeSize(store.layerPath(diffID)));
      return sum + layerSizes.get(diffID)!;
    }, 0);
  const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
  for (const [name, img] of images) {
    let created = 'N/A';
    try {
      const when = Date.parse(JSON.parse(store.readBlob(img.config).toString('utf8')).created);
      if (!Number.isNaN(when)) created = `${humanDuration((now - when) / 1000)} ago`;
    } catch {
      // a config without "created": N/A, as docker shows it
    }
    rows.push([...repositoryAndTag(name), img.config.slice(7, 19), created, humanSize(sizeOf(img))]);
  }
  return columns(rows);
}
