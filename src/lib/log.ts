/**
 * --log / --log-format: where runc writes its log lines, containerd and
 * podman read the last error from.  JSON lines carry runc's field names
 * (level, msg, time).  Errors always go to stderr as well.
 */
import fs = require('fs');

export type LogFormat = 'text' | 'json';

let logPath: string | undefined;
let logFormat: LogFormat = 'text';
let debugEnabled = false;

export function configureLog(opts: { path?: string; format?: string; debug?: boolean }): void {
  logPath = opts.path || undefined;
  if (opts.format !== undefined && opts.format !== 'text' && opts.format !== 'json')
    throw new Error(`--log-format: must be "text" or "json", not "${opts.format}"`);
  logFormat = (opts.format as LogFormat) ?? 'text';
  debugEnabled = !!opts.debug;
}

function write(level: 'debug' | 'info' | 'warning' | 'error', msg: string): void {
  if (!logPath) return;
  const time = new Date().toISOString();
  const line =
    logFormat === 'json'
      ? JSON.stringify({ level, msg, time }) + '\n'
      : `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
  try {
    fs.appendFileSync(logPath, line);
  } catch {
    // A log we cannot write must not turn a success into a failure.
  }
}

export function logError(msg: string): void {
  write('error', msg);
}

export function warn(msg: string): void {
  write('warning', msg);
  fs.writeSync(2, `tsrun: warning: ${msg}\n`);
}

export function debug(msg: string): void {
  if (!debugEnabled) return;
  write('debug', msg);
  if (!logPath) fs.writeSync(2, `tsrun: debug: ${msg}\n`);
}
