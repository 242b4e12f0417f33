/**
 * Registries for the pull tests: Debian's docker-registry (the CNCF
 * distribution registry 2.8) as a plain process on 127.0.0.1, a port the
 * kernel picks, its storage and config in the test's own dir, stopped by
 * pid at teardown.  Its access log (stdout, combined log format) tells
 * which requests a pull made.  Images get there with skopeo, from OCI
 * layouts the tests write (image-helpers.ts).
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { type TestLike, tempDir, waitFor } from './helpers';

export interface Registry {
  /** "127.0.0.1:PORT". */
  host: string;
  /** Where its blobs are (filesystem driver), to corrupt one. */
  storage: string;
  /** The requests it answered so far: "GET /v2/x/blobs/sha256:..." and their statuses. */
  requests(): Array<{ method: string; path: string; status: number }>;
}

/**
 * Once the access log has been still for a moment: the registry writes a
 * request's line after its answer, so a client may be done before the line is.
 */
export async function logSettled(reg: Registry): Promise<void> {
  let last = -1;
  for (;;) {
    const n = reg.requests().length;
    if (n === last) return;
    last = n;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const haveRegistry = (): boolean => fs.existsSync(REGISTRY_BIN) && fs.existsSync('/usr/bin/skopeo');

export interface RegistryAuth {
  /** TLS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
  /** Basic auth against this htpasswd file (bcrypt). */
  htpasswd?: string;
  /** Token auth: the realm, and the certificate whose key signs the tokens. */
  token?: { realm: string; cert: string };
}

export const TOKEN_SERVICE = 'tsrun-test-registry';
export const TOKEN_ISSUER = 'tsrun-test-issuer';

export async function startRegistry(
  t: TestLike & { teardown(fn: () => void): void },
  auth: RegistryAuth = {},
): Promise<Registry> {
  const dir = tempDir(t, 'tsrun-registry-');
  const storage = path.join(dir, 'storage');
  fs.mkdirSync(storage);
  const extra: string[] = [];
  if (auth.tls) extra.push('  tls:', `    certificate: ${auth.tls.cert}`, `    key: ${auth.tls.key}`);
  if (auth.htpasswd) extra.push('auth:', '  htpasswd:', '    realm: tsrun-test', `    path: ${auth.htpasswd}`);
  if (auth.token)
    extra.push(
      'auth:',
      '  token:',
      `    realm: ${auth.token.realm}`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${auth.token.cert}`,
    );
  fs.writeFileSync(
    path.join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: false',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storage}`,
      '  delete:',
      '    enabled: true',
      'http:',
      '  addr: 127.0.0.1:0',
      '  secret: tsrun-test',
      ...extra,
      '',
    ].join('\n'),
  );
  const log = path.join(dir, 'log');
  const fd = fs.openSync(log, 'w');
  const child = spawn(REGISTRY_BIN, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let port = '';
  await waitFor(() => {
    port = /listening on 127\.0\.0\.1:(\d+)/.exec(fs.readFileSync(log, 'utf8'))?.[1] ?? '';
    return port !== '';
  }, 10_000);
  if (!port) throw new Error(`docker-registry did not start: ${fs.readFileSync(log, 'utf8')}`);
  return {
    host: `127.0.0.1:${port}`,
    storage,
    requests: () =>
      [...fs.readFileSync(log, 'utf8').matchAll(/"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP\/[\d.]+" (\d+)/g)].map(
        (m) => ({ method: m[1], path: m[2], status: Number(m[3]) }),
      ),
  };
}

/** A self-signed certificate for 127.0.0.1 and localhost, and its key: PEM files in `dir`. */
export function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const r = spawnSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2'],
      ...['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  return { cert, key };
}

/** An htpasswd file of these users (bcrypt, the only hash the registry takes). */
export function htpasswd(file: string, users: Record<string, string>): void {
  const script = 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))';
  const lines = Object.entries(users).map(([user, password]) => {
    const r = spawnSync('python3', ['-W', 'ignore', '-c', script, password], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`bcrypt: ${r.stderr}`);
    return `${user}:${r.stdout.trim()}`;
  });
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

interface PushOptions {
  /** An index with every platform. */
  all?: boolean;
  /** USER:PASSWORD. */
  creds?: string;
  /** Docker's schema 2 manifests (and manifest list), converted by skopeo, instead of the layout's OCI ones. */
  docker?: boolean;
}

function skopeoArgs(layout: string, ref: string, dest: string, opts: PushOptions): string[] {
  return [
    'copy',
    '-q',
    ...(opts.all ? ['--all'] : []),
    ...(opts.creds ? ['--dest-creds', opts.creds] : []),
    ...(opts.docker ? ['--format', 'v2s2'] : []),
    '--dest-tls-verify=false',
    `oci:${layout}:${ref}`,
    `docker://${dest}`,
  ];
}

/** skopeo copy of an OCI layout's image `ref` to `dest` ("HOST/REPO:TAG"). */
export function skopeoPush(layout: string, ref: string, dest: string, opts: PushOptions = {}): void {
  const r = spawnSync('skopeo', skopeoArgs(layout, ref, dest, opts), { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`skopeo copy to ${dest}: ${r.stderr || r.error}`);
}

/** The same, leaving the event loop free (for a registry whose token server is in the test's process). */
export function skopeoPushAsync(layout: string, ref: string, dest: string, opts: PushOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('skopeo', skopeoArgs(layout, ref, dest, opts), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`skopeo copy to ${dest}: ${stderr}`))));
  });
}

/** The file holding blob `digest` in the registry's filesystem storage. */
export function registryBlobFile(reg: Registry, digest: string): string {
  const hex = digest.slice(7);
  return path.join(reg.storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}
