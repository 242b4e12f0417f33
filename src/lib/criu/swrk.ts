/**
 * One conversation with CRIU in its service mode, `criu swrk 3`, as runc,
 * crun and podman hold it (chosen over CRIU's command line and its action
 * scripts: only the service hands back a restored terminal's pty master,
 * and only it pauses CRIU at each step, so hooks run with the restored pid
 * while CRIU waits).
 *
 * The protocol, over a SOCK_SEQPACKET socketpair (native/criu.c):
 *
 *   tsrun                                  criu swrk 3
 *   spawn ------------------------------->
 *   (restore: CRIU's pid into the container's cgroups; proto.ts opts)
 *   criu_req{DUMP|RESTORE|...} ---------->
 *                        <-------------- criu_resp{NOTIFY, script, pid?} (fd with orphan-pts-master)
 *   criu_req{NOTIFY, notify_success} ---->   (once for each notification)
 *                        <-------------- criu_resp{type, success, ...}
 *   close, wait for CRIU's exit
 *
 * A notification tsrun cannot honour is answered with notify_success false:
 * CRIU then undoes what it did (a dump leaves the tree running, a restore
 * kills what it made) and answers with success false.
 */
import fs = require('fs');
import os = require('os');
import path = require('path');
import { TsrunError } from '../errors';
import { debug } from '../log';
import { native } from '../native';
import {
  type CriuRequest,
  CriuRequestType,
  type CriuResponse,
  decodeResponse,
  encodeRequest,
  versionNumber,
} from './proto';

/** The oldest CRIU runc drives (3.0); tsrun's uses are all in it. */
const OLDEST_VERSION = 30000;

/** What a notification brings: its name, the pid for setup-namespaces and post-restore, an fd for orphan-pts-master. */
export interface Notification {
  script: string;
  pid?: number;
  fd?: number;
}

export interface CriuCall {
  /** The request, made once CRIU runs (a restore names CRIU's own cgroups in it). */
  request: (criuPid: number) => CriuRequest;
  /** CRIU's stdio (a restore's tree inherits them); null: /dev/null. */
  stdio?: [number, number, number] | null;
  /** Files CRIU gets as its fds 4, 5, ... (inherit_fd names them). */
  extra?: number[];
  /** Called with CRIU's pid before the request is sent. */
  onSpawn?: (criuPid: number) => void;
  onNotify?: (n: Notification) => void;
  /** Where CRIU's log goes, to quote from when it fails. */
  logPath?: string;
}

/** `--criu NAME`, or `criu`: a name without a slash is looked up on PATH, as runc's exec does. */
export function criuBinary(name = 'criu'): string {
  if (name.includes('/')) return name;
  for (const dir of (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = path.join(dir || '.', name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  throw new TsrunError(
    `${name}: not found on PATH (checkpoint and restore need CRIU 3.0 or later; Debian: apt-get install criu)`,
  );
}

/**
 * What CRIU's log says went wrong: its first "Error" line (the cause; what
 * follows is often its consequences), without CRIU's source position.
 */
export function criuLogError(logPath: string | undefined): string | undefined {
  if (!logPath) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(logPath, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => /^\(?[\d. ]*\)?\s*Error \(/.test(l) || l.startsWith('Error ('));
  return line?.replace(/^\([\d. ]+\)\s*/, '').replace(/^Error \([^)]*\):\s*/, '');
}

function failure(resp: CriuResponse | undefined, call: CriuCall, what: string): TsrunError {
  const fromLog = criuLogError(call.logPath);
  const reason =
    resp?.crErrmsg ||
    fromLog ||
    (resp?.crErrno ? native.strerror(resp.crErrno).toLowerCase() : undefined) ||
    'no reason given';
  const where = call.logPath ? ` (log: ${call.logPath})` : '';
  return new TsrunError(`criu ${what} failed: ${reason}${where}`);
}

const NAMES: Record<number, string> = {
  [CriuRequestType.DUMP]: 'dump',
  [CriuRequestType.PRE_DUMP]: 'pre-dump',
  [CriuRequestType.RESTORE]: 'restore',
  [CriuRequestType.CHECK]: 'check',
  [CriuRequestType.FEATURE_CHECK]: 'feature check',
  [CriuRequestType.VERSION]: 'version',
};

/** Run one request to its answer; throws with CRIU's reason when it fails. */
export function criuRequest(binary: string, call: CriuCall): CriuResponse {
  const devNull = call.stdio ? -1 : fs.openSync('/dev/null', 'r+');
  let child: { pid: number; sock: number };
  try {
    child = native.spawnCriu(
      binary,
      ['criu', 'swrk', '3'],
      call.stdio ?? [devNull, devNull, devNull],
      call.extra ?? [],
    );
  } finally {
    if (devNull >= 0) fs.closeSync(devNull);
  }
  let request: CriuRequest | undefined;
  let answer: CriuResponse;
  let exit: ReturnType<typeof native.waitPid>;
  try {
    call.onSpawn?.(child.pid);
    request = call.request(child.pid);
    answer = converse(child.sock, child.pid, request, call);
  } finally {
    native.close(child.sock);
    // A pre-dump's CRIU waits for the next request and ends when the socket closes; any other is done.
    exit = native.waitPid(child.pid, false);
  }
  // A dump or restore CRIU answered well but then failed on its way out is a failure, as runc reads it.
  if ((request.type === CriuRequestType.DUMP || request.type === CriuRequestType.RESTORE) && exit?.code !== 0) {
    const how = exit?.signal ? `signal ${exit.signal}` : `status ${exit?.code}`;
    throw new TsrunError(
      `criu ${NAMES[request.type]} failed: criu exited with ${how}${call.logPath ? ` (log: ${call.logPath})` : ''}`,
    );
  }
  return answer;
}

/** The request sent, each notification answered, until CRIU's answer to the request (or its end). */
function converse(sock: number, pid: number, request: CriuRequest, call: CriuCall): CriuResponse {
  const what = NAMES[request.type] ?? `request ${request.type}`;
  debug(`criu ${what}: pid ${pid}`);
  native.packetSend(sock, encodeRequest(request));
  let handlerError: unknown;
  for (;;) {
    const packet = native.packetRecv(sock, -1);
    if (!packet) {
      if (handlerError) throw handlerError;
      throw failure(undefined, call, what);
    }
    let resp: CriuResponse;
    try {
      resp = decodeResponse(packet.data);
    } catch (err) {
      if (packet.fd !== undefined) native.close(packet.fd);
      throw new TsrunError(`criu ${what}: ${(err as Error).message}`);
    }
    if (resp.type === CriuRequestType.NOTIFY) {
      let ok = !handlerError;
      try {
        if (ok) call.onNotify?.({ script: resp.notify?.script ?? '', pid: resp.notify?.pid, fd: packet.fd });
      } catch (err) {
        handlerError = err;
        ok = false;
      } finally {
        // The fd is the handler's to use while it runs, not to keep (the pty master goes on to the console socket).
        if (packet.fd !== undefined) native.close(packet.fd);
      }
      debug(`criu ${what}: ${resp.notify?.script}${ok ? '' : ' (refused)'}`);
      native.packetSend(sock, encodeRequest({ type: CriuRequestType.NOTIFY, notifySuccess: ok }));
      continue;
    }
    if (packet.fd !== undefined) native.close(packet.fd);
    if (handlerError) throw handlerError;
    if (!resp.success) throw failure(resp, call, what);
    return resp;
  }
}

/** CRIU's version through the service, refused below 3.0 (runc's minimum). */
export function checkCriuVersion(binary: string): number {
  const resp = criuRequest(binary, { request: () => ({ type: CriuRequestType.VERSION }) });
  if (!resp.version) throw new TsrunError(`criu (${binary}) did not tell its version`);
  const version = versionNumber(resp.version);
  if (version < OLDEST_VERSION)
    throw new TsrunError(
      `criu ${resp.version.major}.${resp.version.minor}: checkpoint and restore need CRIU 3.0 or later`,
    );
  return version;
}

/** FEATURE_CHECK: refused by name unless CRIU (and the kernel) has each feature asked. */
export function checkCriuFeatures(binary: string, wanted: { memTrack?: boolean; lazyPages?: boolean }): void {
  const resp = criuRequest(binary, { request: () => ({ type: CriuRequestType.FEATURE_CHECK, features: wanted }) });
  const missing: string[] = [];
  if (wanted.memTrack && !resp.features?.memTrack) missing.push('memory tracking (--pre-dump, --parent-path)');
  if (wanted.lazyPages && !resp.features?.lazyPages) missing.push('lazy pages (--lazy-pages: userfaultfd)');
  if (missing.length) throw new TsrunError(`criu cannot do ${missing.join(' or ')} on this host`);
}

/**
 * `criu check` through the service: whether CRIU can work on this kernel at
 * all, asked before the container (or any directory of the caller's) is
 * touched.  Its log goes to a private directory of its own, removed after:
 * the reason is quoted in the error.
 */
export function checkCriuWorks(binary: string): void {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-criu-check-'));
  try {
    const dirFd = fs.openSync(logDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      criuRequest(binary, {
        request: () => ({
          type: CriuRequestType.CHECK,
          opts: { imagesDirFd: dirFd, logLevel: 2, logFile: 'check.log' },
        }),
        logPath: path.join(logDir, 'check.log'),
      });
    } finally {
      fs.closeSync(dirFd);
    }
  } catch (err) {
    const reason = (err as Error).message.replace(/^criu check failed: /, '').replace(/ \(log: [^)]*\)$/, '');
    throw new TsrunError(`criu cannot checkpoint or restore on this host: its check failed: ${reason}`);
  } finally {
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}
