/**
 * A client of one repository in one registry, as the OCI distribution
 * spec (and Docker's registry API v2, its origin) define it: manifests by
 * tag or digest, blobs by digest, the auth challenge, errors in words.
 *
 * Auth, as docker does it: GET /v2/ first; a 401 there carries the
 * challenge (`WWW-Authenticate`).  `Basic` sends the credentials with
 * every request; `Bearer` fetches a token for the repository's scope from
 * the realm the registry names (with the credentials, if any: anonymous
 * tokens are how public images are pulled) and sends that.  A 401 after
 * that is an error saying whether credentials were sent, and from where.
 *
 * Nothing from a registry is trusted: a manifest is read up to 4 MiB, a
 * blob up to its descriptor's size, every one hashed against the digest
 * it was asked by, and a manifest fetched by tag against the digest the
 * registry claims for it.  A redirect (blob storage elsewhere) is
 * followed, at most five, without the Authorization header when it leaves
 * the registry's origin.
 */
import { createHash, type Hash } from 'crypto';
import fs = require('fs');
import { TsrunError } from '../errors';
import type { Credentials } from './credentials';
import { discard, type Exchange, readBody, request, type RequestOptions, TlsError, TransportError } from './http';
import type { Endpoint } from './hosts';
import { MEDIA } from '../image/media-types';

export { MEDIA };

/** Every manifest type tsrun reads: asked for all four, a registry sends what it has (2.8 would otherwise convert to schema 1). */
const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

/** containerd's limit on a manifest; real ones are a few KiB (a 100-layer one, 20). */
export const MAX_MANIFEST_BYTES = 4 << 20;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Manifest {
  /** The bytes as served: the digest is theirs. */
  data: Buffer;
  digest: string;
  mediaType: string;
}

/** How often a broken download is taken up again, and how long to wait first (doubling). */
const ATTEMPTS = 5;
const FIRST_BACKOFF_MS = 200;
/** Statuses a registry under load answers; worth another try. */
const RETRIED_STATUS = new Set([429, 500, 502, 503, 504]);

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull",error="..."`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (let p = re.exec(m[2]); p; p = re.exec(m[2])) params[p[1].toLowerCase()] = p[2]?.replace(/\\(.)/g, '$1') ?? p[3];
  return { scheme, params };
}

/** The registry's own words for an error response: "MANIFEST_UNKNOWN: manifest unknown". */
async function errorOf(ex: Exchange): Promise<{ codes: string[]; text: string }> {
  let body = '';
  try {
    body = (await readBody(ex, 64 << 10, 'error body')).toString('utf8');
  } catch {
    // what the status says is enough
  }
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: string; message?: string }> };
    const errors = (parsed.errors ?? []).filter((e) => e && typeof e.code === 'string');
    if (errors.length)
      return {
        codes: errors.map((e) => e.code!),
        text: errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; '),
      };
  } catch {
    // not the spec's JSON: the status alone
  }
  return {
    codes: [],
    text: `HTTP ${ex.status}${body && body.length < 200 && !/</.test(body) ? `: ${body.trim()}` : ''}`,
  };
}

/** A wait that lets the other downloads go on. */
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function sha256Of(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class RegistryClient {
  /** https://host or, for an insecure registry without TLS, http://host. */
  private origin?: string;
  private challenge?: Challenge;
  /** The Authorization header per scope ("pull", "pull,push"). */
  private readonly authorization = new Map<string, string>();

  constructor(
    readonly endpoint: Endpoint,
    /** The repository's path in the registry: "library/busybox". */
    readonly repository: string,
    private readonly credentials: () => Credentials | undefined,
  ) {}

  /** "127.0.0.1:5000/busybox", for messages. */
  get name(): string {
    return `${this.endpoint.domain}/${this.repository}`;
  }

  /**
   * The origin to use, found by the /v2/ ping (which also gives the
   * challenge): HTTPS, or plain HTTP where the address has no TLS and the
   * endpoint allows it (hosts.ts).
   */
  private async ping(): Promise<string> {
    if (this.origin) return this.origin;
    const { host, plainHttp, skipVerify, tls } = this.endpoint;
    const settings = { ...tls, skipVerify };
    let origin = `https://${host}`;
    let ex: Exchange;
    try {
      ex = await this.retrying(() => request(new URL('/v2/', origin), { tls: settings, timeoutMs: 30_000 }));
    } catch (err) {
      if (!(err instanceof TlsError && err.noTls && plainHttp)) throw this.unreachable(err);
      origin = `http://${host}`;
      try {
        ex = await this.retrying(() => request(new URL('/v2/', origin), { timeoutMs: 30_000 }));
      } catch (err2) {
        throw this.unreachable(err2);
      }
    }
    discard(ex);
    if (ex.status === 401) this.challenge = parseChallenge(ex.headers['www-authenticate'] as string | undefined);
    else if (ex.status !== 200)
      throw new TsrunError(
        `registry ${this.endpoint.domain}: ${origin}/v2/ answered HTTP ${ex.status}: not a registry (OCI distribution API)`,
      );
    this.endpoint.tls = settings;
    return (this.origin = origin);
  }

  /** "registry HOST: what failed", without the URL's origin again. */
  private unreachable(err: unknown): Error {
    if (!(err instanceof TsrunError)) return err as Error;
    return new TsrunError(`registry ${this.endpoint.domain}: ${err.message.replace(/^https?:\/\/[^ ]*?: /, '')}`);
  }

  /** Retry `fn` while it fails to reach the registry (not on an HTTP answer). */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof TransportError) || !err.retry || attempt >= ATTEMPTS) throw err;
        await pause(FIRST_BACKOFF_MS * 2 ** (attempt - 1));
      }
    }
  }

  private describeCredentials(): string {
    const c = this.credentials();
    return c ? `the credentials of "${c.username}" (${c.source})` : 'no credentials';
  }

  /**
   * The Authorization header for `actions` on the repository (and pull of
   * the `alsoPull` repositories, a cross-repository mount's source),
   * fetching a token when the challenge is Bearer.
   */
  private async authorize(actions: string, alsoPull: string[] = []): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    const key = [actions, ...alsoPull].join(' ');
    const known = this.authorization.get(key);
    if (known) return known;
    const creds = this.credentials();
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (challenge.scheme === 'basic') {
      if (!basic)
        throw new TsrunError(
          `registry ${this.endpoint.domain}: authentication required, and there are no credentials for it (tsrun image login ${this.endpoint.domain})`,
        );
      this.authorization.set(key, basic);
      return basic;
    }
    const realm = challenge.params.realm;
    if (!realm) throw new TsrunError(`registry ${this.endpoint.domain}: its Bearer challenge names no realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new TsrunError(`registry ${this.endpoint.domain}: its token realm "${realm}" is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new TsrunError(`registry ${this.endpoint.domain}: its token realm "${realm}" is not http(s)`);
    // Credentials go to a plain-HTTP token server only for a registry that is itself allowed to be insecure.
    if (url.protocol === 'http:' && basic && !this.endpoint.plainHttp)
      throw new TsrunError(
        `registry ${this.endpoint.domain}: its token realm ${url.origin} is plain HTTP; credentials are not sent there`,
      );
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', `repository:${this.repository}:${actions}`);
    for (const other of alsoPull) url.searchParams.append('scope', `repository:${other}:pull`);
    const ex = await this.retrying(() =>
      request(url, { headers: basic ? { Authorization: basic } : {}, tls: this.endpoint.tls }),
    );
    if (ex.status === 401 || ex.status === 403) {
      discard(ex);
      throw new TsrunError(
        creds
          ? `registry ${this.endpoint.domain}: the token server ${url.origin} refused ${this.describeCredentials()}`
          : `registry ${this.endpoint.domain}: authentication required, and there are no credentials for it (tsrun image login ${this.endpoint.domain})`,
      );
    }
    if (ex.status !== 200)
      throw new TsrunError(
        `registry ${this.endpoint.domain}: the token server ${url.origin}: ${(await errorOf(ex)).text}`,
      );
    let token: unknown;
    try {
      const body = JSON.parse((await readBody(ex, 1 << 20, 'token')).toString('utf8')) as Record<string, unknown>;
      token = body.token ?? body.access_token;
    } catch (err) {
      if (err instanceof TransportError) throw err;
    }
    if (typeof token !== 'string' || !token)
      throw new TsrunError(`registry ${this.endpoint.domain}: the token server ${url.origin} sent no token`);
    const header = `Bearer ${token}`;
    this.authorization.set(key, header);
    return header;
  }

  /**
   * One request to the registry (path from /v2/), authorized, redirects
   * followed.  The answer is returned whatever its status; a 401 is turned
   * into the error it means.
   */
  async send(path: string, opts: RequestOptions & { actions?: string; alsoPull?: string[] } = {}): Promise<Exchange> {
    const ex = await this.sendOnce(path, opts);
    // A token that expired during a long pull (Docker Hub's last 5 minutes): one more, as docker fetches one.
    // A stream body cannot be sent twice; an upload's PUT asks for its token just before.
    if (ex.status !== 401 || this.challenge?.scheme !== 'bearer' || (opts.body && !Buffer.isBuffer(opts.body)))
      return this.refused(ex);
    discard(ex);
    this.authorization.delete([opts.actions ?? 'pull', ...(opts.alsoPull ?? [])].join(' '));
    return this.refused(await this.sendOnce(path, opts));
  }

  /** A 401 as the error it means; any other answer as it is. */
  private refused(ex: Exchange): Exchange {
    if (ex.status !== 401) return ex;
    const challenge = parseChallenge(ex.headers['www-authenticate'] as string | undefined);
    discard(ex);
    const denied = challenge?.params.error ? ` (${challenge.params.error})` : '';
    throw new TsrunError(
      this.credentials()
        ? `${this.name}: access denied${denied} with ${this.describeCredentials()}`
        : `${this.name}: authentication required${denied}: the repository is not public, or does not exist (tsrun image login ${this.endpoint.domain})`,
    );
  }

  private async sendOnce(
    path: string,
    opts: RequestOptions & { actions?: string; alsoPull?: string[] },
  ): Promise<Exchange> {
    const origin = await this.ping();
    const actions = opts.actions ?? 'pull';
    const auth = await this.authorize(actions, opts.alsoPull);
    // An absolute URL (an upload's Location) gets the credentials only on the registry's own origin.
    let url = new URL(path, origin);
    const headers: Record<string, string> = {
      ...opts.headers,
      ...(auth && url.origin === origin ? { Authorization: auth } : {}),
    };
    for (let hops = 0; ; hops++) {
      const ex = await request(url, { ...opts, headers, tls: this.endpoint.tls });
      if ([301, 302, 303, 307, 308].includes(ex.status) && ex.headers.location && (opts.method ?? 'GET') === 'GET') {
        discard(ex);
        if (hops >= 5) throw new TsrunError(`${this.name}: more than 5 redirects from ${path}`);
        const next = new URL(ex.headers.location, url);
        if (next.protocol !== 'https:' && next.protocol !== 'http:')
          throw new TsrunError(`${this.name}: a redirect to "${next.protocol}" from ${path}`);
        if (next.protocol === 'http:' && url.protocol === 'https:' && !this.endpoint.plainHttp)
          throw new TsrunError(`${this.name}: a redirect from HTTPS to plain HTTP (${next.origin})`);
        if (next.origin !== url.origin) delete headers.Authorization;
        url = next;
        continue;
      }
      return ex;
    }
  }

  /**
   * `image login`: whether the registry takes the credentials, as docker
   * login asks: GET /v2/ with them (Basic), or a token with no scope from
   * the realm (Bearer).  A registry that asks for none takes any.
   */
  async checkLogin(): Promise<void> {
    await this.ping();
    const challenge = this.challenge;
    const creds = this.credentials();
    if (!challenge || !creds) return;
    const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    let url = new URL('/v2/', this.origin);
    if (challenge.scheme === 'bearer') {
      if (!challenge.params.realm)
        throw new TsrunError(`registry ${this.endpoint.domain}: its Bearer challenge names no realm`);
      url = new URL(challenge.params.realm);
      if (url.protocol === 'http:' && !this.endpoint.plainHttp)
        throw new TsrunError(
          `registry ${this.endpoint.domain}: its token realm ${url.origin} is plain HTTP; credentials are not sent there`,
        );
      if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
      url.searchParams.set('account', creds.username);
    }
    const ex = await this.retrying(() => request(url, { headers: { Authorization: basic }, tls: this.endpoint.tls }));
    if (ex.status === 200) return discard(ex);
    if (ex.status === 401 || ex.status === 403) {
      discard(ex);
      throw new TsrunError(
        `registry ${this.endpoint.domain}: the username or password of "${creds.username}" was refused`,
      );
    }
    throw new TsrunError(`registry ${this.endpoint.domain}: ${url.origin}${url.pathname}: ${(await errorOf(ex)).text}`);
  }

  /** What a 404 of a manifest means: no such repository, or no such tag or digest in it. */
  private async unknownManifest(reference: string): Promise<never> {
    const what = reference.startsWith('sha256:') ? `manifest ${reference}` : `tag "${reference}"`;
    let repoKnown = true;
    try {
      const ex = await this.send(`/v2/${this.repository}/tags/list?n=1`);
      const { codes } = ex.status === 200 ? (discard(ex), { codes: [] as string[] }) : await errorOf(ex);
      repoKnown = !(ex.status === 404 && (codes.includes('NAME_UNKNOWN') || codes.length === 0));
    } catch {
      // the manifest's own answer stands
    }
    throw new TsrunError(
      repoKnown
        ? `${this.name}: ${what} not found`
        : `${this.name}: repository not found in registry ${this.endpoint.domain}`,
    );
  }

  /** The manifest (or index) `reference` names, a tag or a digest, verified. */
  async manifest(reference: string): Promise<Manifest> {
    const ex = await this.retryingStatus(() =>
      this.send(`/v2/${this.repository}/manifests/${reference}`, { headers: { Accept: ACCEPT } }),
    );
    if (ex.status === 404) {
      const { codes } = await errorOf(ex);
      if (codes.length === 0 || codes.includes('MANIFEST_UNKNOWN') || codes.includes('NAME_UNKNOWN'))
        return this.unknownManifest(reference);
      throw new TsrunError(`${this.name}: manifest ${reference}: ${codes.join(', ')}`);
    }
    if (ex.status !== 200) throw new TsrunError(`${this.name}: manifest ${reference}: ${(await errorOf(ex)).text}`);
    const data = await readBody(ex, MAX_MANIFEST_BYTES, `${this.name}: manifest ${reference}`);
    const digest = sha256Of(data);
    const claimed = ex.headers['docker-content-digest'];
    if (reference.startsWith('sha256:') && digest !== reference)
      throw new TsrunError(`${this.name}: manifest ${reference}: digest mismatch: the content is ${digest}`);
    if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== digest)
      throw new TsrunError(
        `${this.name}: manifest ${reference}: digest mismatch: the registry says ${claimed}, the content is ${digest}`,
      );
    let mediaType = String(ex.headers['content-type'] ?? '')
      .split(';')[0]
      .trim();
    try {
      const parsed = JSON.parse(data.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown };
      if (parsed.schemaVersion === 1)
        throw new TsrunError(`${this.name}: manifest ${reference}: Docker schema 1, deprecated and not supported`);
      if (typeof parsed.mediaType === 'string') mediaType = parsed.mediaType;
    } catch (err) {
      if (err instanceof TsrunError) throw err;
      throw new TsrunError(`${this.name}: manifest ${reference}: not JSON`);
    }
    return { data, digest, mediaType };
  }

  /** Retry a request the registry answered with a status of load (429, 5xx). */
  private async retryingStatus(fn: () => Promise<Exchange>): Promise<Exchange> {
    for (let attempt = 1; ; attempt++) {
      const ex = await this.retrying(fn);
      if (!RETRIED_STATUS.has(ex.status) || attempt >= ATTEMPTS) return ex;
      discard(ex);
      await pause(FIRST_BACKOFF_MS * 2 ** (attempt - 1));
    }
  }

  private async blobError(ex: Exchange, digest: string): Promise<never> {
    const { codes, text } = await errorOf(ex);
    if (ex.status === 404 && (codes.length === 0 || codes.includes('BLOB_UNKNOWN')))
      throw new TsrunError(`${this.name}: blob ${digest} not found`);
    throw new TsrunError(`${this.name}: blob ${digest}: ${text}`);
  }

  /** A small blob (an image config) whole, verified. */
  async blob(desc: Descriptor, limit: number): Promise<Buffer> {
    if (desc.size > limit)
      throw new TsrunError(`${this.name}: blob ${desc.digest}: ${desc.size} bytes, more than the ${limit} allowed`);
    const ex = await this.retryingStatus(() => this.send(`/v2/${this.repository}/blobs/${desc.digest}`));
    if (ex.status !== 200) return this.blobError(ex, desc.digest);
    const data = await readBody(ex, desc.size, `${this.name}: blob ${desc.digest}`);
    const digest = sha256Of(data);
    if (digest !== desc.digest)
      throw new TsrunError(`${this.name}: blob ${desc.digest}: digest mismatch: the content is ${digest}`);
    return data;
  }

  /**
   * A blob into `file`, verified against its digest and size as it comes.
   * A download that breaks goes on where it stopped (Range), up to five
   * tries; a registry that ignores the range sends it all again.
   */
  async download(desc: Descriptor, file: string, onBytes: (n: number) => void = () => {}): Promise<void> {
    const fd = fs.openSync(file, 'w', 0o600);
    let hash: Hash = createHash('sha256');
    let got = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const ex = await this.retryingStatus(() =>
            this.send(
              `/v2/${this.repository}/blobs/${desc.digest}`,
              got > 0 ? { headers: { Range: `bytes=${got}-` } } : {},
            ),
          );
          if (ex.status === 200 && got > 0) {
            // The whole blob again: start over.
            onBytes(-got);
            got = 0;
            hash = createHash('sha256');
            fs.ftruncateSync(fd, 0);
          } else if (ex.status !== 200 && ex.status !== 206) {
            return await this.blobError(ex, desc.digest);
          }
          for await (const chunk of ex.body) {
            const buf = chunk as Buffer;
            if (got + buf.length > desc.size) {
              discard(ex);
              throw new TsrunError(
                `${this.name}: blob ${desc.digest}: more than the ${desc.size} bytes its descriptor says`,
              );
            }
            fs.writeSync(fd, buf, 0, buf.length, got);
            hash.update(buf);
            got += buf.length;
            onBytes(buf.length);
          }
          if (got < desc.size)
            throw new TransportError(
              `${this.name}: blob ${desc.digest}: the connection closed after ${got} of ${desc.size} bytes`,
            );
          break;
        } catch (err) {
          if (err instanceof TsrunError && !(err instanceof TransportError)) throw err;
          if (attempt >= ATTEMPTS)
            throw new TsrunError(
              `${this.name}: blob ${desc.digest}: ${(err as Error).message.replace(/^.*: blob sha256:[0-9a-f]+: /, '')} (${ATTEMPTS} tries)`,
            );
          await pause(FIRST_BACKOFF_MS * 2 ** (attempt - 1));
        }
      }
      const digest = `sha256:${hash.digest('hex')}`;
      if (digest !== desc.digest)
        throw new TsrunError(`${this.name}: blob ${desc.digest}: digest mismatch: the content is ${digest}`);
    } finally {
      fs.closeSync(fd);
    }
  }

  // ---- push (image push): blobs first, each checked, mounted or uploaded; then the manifest

  /** Whether the repository has blob `digest` (HEAD). */
  async hasBlob(digest: string): Promise<boolean> {
    const ex = await this.retryingStatus(() =>
      this.send(`/v2/${this.repository}/blobs/${digest}`, { method: 'HEAD', actions: 'pull,push' }),
    );
    discard(ex);
    if (ex.status === 200) return true;
    if (ex.status === 404) return false;
    throw new TsrunError(`${this.name}: blob ${digest}: HTTP ${ex.status}`);
  }

  /**
   * Mount blob `digest` from repository `from` of the same registry: true
   * when mounted; otherwise the upload session the registry opened instead
   * (it answers 202 when it cannot mount), for upload().
   */
  async mountBlob(digest: string, from: string): Promise<true | string> {
    const ex = await this.send(
      `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      { method: 'POST', actions: 'pull,push', alsoPull: [from], headers: { 'Content-Length': '0' } },
    );
    if (ex.status === 201) return (discard(ex), true);
    if (ex.status === 202 && typeof ex.headers.location === 'string') return (discard(ex), ex.headers.location);
    throw new TsrunError(`${this.name}: mount of blob ${digest} from ${from}: ${(await errorOf(ex)).text}`);
  }

  /** Upload `file` as blob `desc` (monolithic: POST for a session, PUT of the whole blob with its digest). */
  async upload(
    desc: Descriptor,
    file: string,
    session?: string,
    onBytes: (n: number) => void = () => {},
  ): Promise<void> {
    let location = session;
    if (location === undefined) {
      const ex = await this.retryingStatus(() =>
        this.send(`/v2/${this.repository}/blobs/uploads/`, {
          method: 'POST',
          actions: 'pull,push',
          headers: { 'Content-Length': '0' },
        }),
      );
      if (ex.status !== 202 || typeof ex.headers.location !== 'string')
        throw new TsrunError(`${this.name}: upload of blob ${desc.digest}: ${(await errorOf(ex)).text}`);
      discard(ex);
      location = ex.headers.location;
    }
    const url = new URL(location, this.origin);
    url.searchParams.set('digest', desc.digest); // kept beside the registry's own state parameters
    const body = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    body.on('data', (chunk) => onBytes((chunk as Buffer).length));
    const ex = await this.send(url.toString(), {
      method: 'PUT',
      actions: 'pull,push',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(desc.size) },
      body,
    });
    if (ex.status !== 201 && ex.status !== 204) {
      const { text } = await errorOf(ex);
      throw new TsrunError(`${this.name}: upload of blob ${desc.digest}: ${text}`);
    }
    discard(ex);
  }

  /** PUT the manifest under `reference` (a tag); the digest the registry gives it. */
  async putManifest(reference: string, data: Buffer, mediaType: string): Promise<string> {
    const ex = await this.retryingStatus(() =>
      this.send(`/v2/${this.repository}/manifests/${reference}`, {
        method: 'PUT',
        actions: 'pull,push',
        headers: { 'Content-Type': mediaType, 'Content-Length': String(data.length) },
        body: data,
      }),
    );
    if (ex.status !== 201 && ex.status !== 200)
      throw new TsrunError(`${this.name}: manifest ${reference}: ${(await errorOf(ex)).text}`);
    discard(ex);
    const digest = sha256Of(data);
    const claimed = ex.headers['docker-content-digest'];
    if (typeof claimed === 'string' && claimed !== digest)
      throw new TsrunError(`${this.name}: manifest ${reference}: the registry stored ${claimed}, tsrun sent ${digest}`);
    return digest;
  }
}
