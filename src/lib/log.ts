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

/**
 * Text for stderr, where a failed write is dropped: an engine may hand the
 * runtime a stderr it cannot write to (containerd's shim gives a pod
 * sandbox /dev/null opened read-only on 0, 1 and 2: go-runc's NullIO), and
 * the message must not replace the error it carries (the shim reports the
 * log's last error line).  runc's logger drops such writes too.
 */
export function toStderr(text: string): void {
  try {
    fs.writeSync(2, text);
  } catch {
    // EBADF, EPIPE: nobody can read it; --log keeps the line.
  }
}

export function logError(msg: string): void {
  write('error', msg);
}

export function warn(msg: string): void {
  write('warning', msg);
  toStderr(`tsrun: warning: ${msg}\n`);
}

export function debug(msg: string): void {
  if (!debugEnabled) return;
  write('debug', msg);
  if (!logPath) toStderr(`tsrun: debug: ${msg}\n`);
}
