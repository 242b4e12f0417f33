/**
 * One HTTP exchange with a registry, through node:http and node:https
 * (which Bun implements too): no redirect followed here (the client decides
 * where a redirect may take credentials), a body read only as far as the
 * caller asks, and every failure a TsrunError naming the URL.
 *
 * Why not fetch(): Node 20's fetch (undici) takes extra CA certificates
 * only through an undici dispatcher, which Bun ignores; node:https's `ca`
 * option works in both, per registry (certs.d, see tls.ts).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'http';
import type { Readable } from 'stream';
import { TsrunError } from '../errors';

export interface TlsSettings {
  /** PEM certificates trusted beside the system's (certs.d/*.crt); none: the system's alone. */
  ca?: string[];
  /** A client certificate and key (certs.d/*.cert, *.key). */
  cert?: string;
  key?: string;
  /** Accept any certificate (--tls-verify=false for this registry). */
  skipVerify?: boolean;
}

export interface Exchange {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, unread: read it (readBody) or drop it (discard). */
  body: IncomingMessage;
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  tls?: TlsSettings;
  /** No answer's headers within this long: an error (a registry that hangs). */
  timeoutMs?: number;
}

/** How long a registry may take to start answering. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** TLS failed: `noTls` when the address speaks no TLS at all (plain HTTP may be tried), else the certificate. */
export class TlsError extends TsrunError {
  constructor(
    message: string,
    readonly noTls: boolean,
  ) {
    super(message);
  }
}

/** A network-level failure (no HTTP answer): worth another try, unlike an HTTP error, unless nothing listens. */
export class TransportError extends TsrunError {
  constructor(
    message: string,
    readonly retry = true,
  ) {
    super(message);
  }
}

const http = (): typeof import('http') => require('http') as typeof import('http');
const https = (): typeof import('https') => require('https') as typeof import('https');
const tls = (): typeof import('tls') => require('tls') as typeof import('tls');

const NO_TLS =
  'no TLS at that address (plain HTTP is tried only for a loopback registry, or one named with --tls-verify=false)';

/** What went wrong with a TLS handshake, in words (Node's codes are terse). */
function tlsReason(err: NodeJS.ErrnoException): string | undefined {
  switch (err.code) {
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return `its certificate is not signed by a trusted authority (${err.code}); add the CA to /etc/containers/certs.d/HOST:PORT/ca.crt, or give --tls-verify=false for this registry`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `its certificate is not for this host (${err.message})`;
    case 'CERT_HAS_EXPIRED':
      return 'its certificate has expired';
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return NO_TLS;
    default:
      return undefined;
  }
}

export function request(url: URL, opts: RequestOptions = {}): Promise<Exchange> {
  const secure = url.protocol === 'https:';
  const settings = opts.tls ?? {};
  return new Promise((resolve, reject) => {
    const options = {
      method: opts.method ?? 'GET',
      headers: { 'User-Agent': 'tsrun', ...opts.headers },
      ...(secure
        ? {
            // The system's roots stay trusted beside a registry's own CA (Node's `ca` replaces them).
            ca: settings.ca?.length ? [...tls().rootCertificates, ...settings.ca] : undefined,
            cert: settings.cert,
            key: settings.key,
            rejectUnauthorized: !settings.skipVerify,
          }
        : {}),
    };
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const req = (secure ? https() : http()).request(url, options, (res) => {
      // From here the socket's timeout is a body's stall: the read fails, and a download takes it up again.
      res.setTimeout(timeout, () =>
        res.destroy(new TransportError(`${url.origin}: the body stalled for ${timeout / 1000} s`)),
      );
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
    });
    // No answer at all: not tried again (five more waits as long would only delay the error).
    req.setTimeout(timeout, () =>
      req.destroy(new TransportError(`${url.origin}: no answer within ${timeout / 1000} s`, false)),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof TsrunError) return reject(err);
      const reason = secure ? tlsReason(err) : undefined;
      if (reason) return reject(new TlsError(`${url.origin}: TLS: ${reason}`, reason === NO_TLS));
      if (err.code === 'ECONNREFUSED') return reject(new TransportError(`${url.origin}: connection refused`, false));
      if (err.code === 'ENOTFOUND')
        return reject(
          new TransportError(`${url.origin}: cannot resolve ${url.hostname} (no such host, or no DNS here)`, false),
        );
      reject(new TransportError(`${url.origin}: ${err.message}`));
    });
    if (opts.body === undefined) req.end();
    else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
    else opts.body.pipe(req);
  });
}

/** The whole body, refused past `limit` bytes (a registry is not trusted to send what it should). */
export async function readBody(ex: Exchange, limit: number, what: string): Promise<Buffer> {
  const declared = Number(ex.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    discard(ex);
    throw new TsrunError(`${what}: ${declared} bytes, more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of ex.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        discard(ex);
        throw new TsrunError(`${what}: more than the ${limit} bytes allowed`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof TsrunError) throw err;
    throw new TransportError(`${what}: the connection broke: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks);
}

/** Drop a body unread (the socket is not reused: Node's agent would otherwise wait for it). */
export function discard(ex: Exchange): void {
  ex.body.destroy();
}
