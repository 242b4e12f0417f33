/**
 * A registry's credentials, where docker and podman keep them, first found
 * wins (podman's order):
 *
 *   1. $REGISTRY_AUTH_FILE
 *   2. $XDG_RUNTIME_DIR/containers/auth.json (root without it:
 *      /run/containers/0/auth.json), where `podman login` writes
 *   3. $DOCKER_CONFIG/config.json, else ~/.docker/config.json, where
 *      `docker login` writes
 *
 * In each, `credHelpers[domain]` then `credsStore` name a credential helper
 * (`docker-credential-NAME get`, the domain on stdin), else `auths` holds
 * `auth` (base64 of user:password) or `username` and `password` under
 * the domain ("127.0.0.1:5000"), a repository under it
 * ("quay.io/org/repo", most specific first), or for Docker Hub its old
 * names ("https://index.docker.io/v1/").  An entry tsrun cannot use (an
 * identity token alone, a helper that fails) is an error naming the file,
 * never a silent anonymous try.
 */
import fs = require('fs');
import path = require('path');
import { spawnSync } from 'child_process';
import { TsrunError } from '../errors';
import { inStoreNamespace } from '../image/user-store';

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for messages: a file, or a helper. */
  source: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The files looked in, in order (each may be missing). */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  // Root's default, not in a user's store namespace (root there is the user, as its pull is).
  const root = process.geteuid?.() === 0 && !inStoreNamespace();
  const runtimeDir = env.XDG_RUNTIME_DIR || (root ? '/run/containers/0' : undefined);
  if (runtimeDir) files.push(path.join(runtimeDir, env.XDG_RUNTIME_DIR ? 'containers' : '', 'auth.json'));
  const dockerDir = env.DOCKER_CONFIG || (env.HOME ? path.join(env.HOME, '.docker') : undefined);
  if (dockerDir) files.push(path.join(dockerDir, 'config.json'));
  return files;
}

/** Where `tsrun image login` writes: the first file podman would read. */
export function loginFile(env: NodeJS.ProcessEnv = process.env): string {
  return authFiles(env)[0] ?? path.join('/run/containers/0', 'auth.json');
}

const HUB_KEYS = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];

/** An auths key as a plain "host[/path]": no scheme, no trailing slash, Docker Hub's old "/v1/". */
function keyName(key: string): string {
  return key
    .replace(/^https?:\/\//, '')
    .replace(/\/v1\/?$/, '')
    .replace(/\/+$/, '');
}

function readAuthFile(file: string): AuthFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TsrunError(`${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as AuthFile;
    if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
    return parsed;
  } catch (err) {
    throw new TsrunError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
}

function fromEntry(entry: AuthEntry, where: string): Credentials | undefined {
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0) throw new TsrunError(`${where}: "auth" is not base64 of USER:PASSWORD`);
    return { username: text.slice(0, colon), password: text.slice(colon + 1), source: where };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string')
    return { username: entry.username, password: entry.password, source: where };
  if (entry.identitytoken)
    throw new TsrunError(
      `${where}: an identity token alone (OAuth2 refresh tokens are not supported); log in with a password`,
    );
  return undefined;
}

function fromHelper(helper: string, domain: string, file: string): Credentials | undefined {
  const program = `docker-credential-${helper}`;
  const r = spawnSync(program, ['get'], { input: domain, encoding: 'utf8', timeout: 30_000 });
  if (r.error)
    throw new TsrunError(
      `${file}: credential helper ${program}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : r.error.message}`,
    );
  // Helpers say "credentials not found in native keychain" (exit 1) when they hold none for the registry.
  if (r.status !== 0) {
    if (/credentials not found/i.test(r.stdout + r.stderr)) return undefined;
    throw new TsrunError(
      `${file}: credential helper ${program}: ${(r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.status}`}`,
    );
  }
  let out: { Username?: unknown; Secret?: unknown };
  try {
    out = JSON.parse(r.stdout) as typeof out;
  } catch {
    throw new TsrunError(`${file}: credential helper ${program}: its answer is not JSON`);
  }
  if (typeof out.Username !== 'string' || typeof out.Secret !== 'string')
    throw new TsrunError(`${file}: credential helper ${program}: its answer lacks Username or Secret`);
  return { username: out.Username, password: out.Secret, source: `${program} (${file})` };
}

/** The credentials for repository `repoPath` of `domain`, or undefined (anonymous). */
export function credentialsFor(domain: string, repoPath: string, files = authFiles()): Credentials | undefined {
  const names = domain === 'docker.io' ? HUB_KEYS.map(keyName) : [domain];
  // "domain/a/b/c", "domain/a/b", "domain/a", then the domain's own names.
  const parts = repoPath.split('/');
  const wanted = [...parts.map((_, i) => `${domain}/${parts.slice(0, parts.length - i).join('/')}`), ...names];
  for (const file of files) {
    const auth = readAuthFile(file);
    if (!auth) continue;
    const helper =
      auth.credHelpers?.[domain] ?? (domain === 'docker.io' ? auth.credHelpers?.['index.docker.io'] : undefined);
    if (helper) return fromHelper(helper, domain === 'docker.io' ? 'https://index.docker.io/v1/' : domain, file);
    const entries = new Map(Object.entries(auth.auths ?? {}).map(([key, entry]) => [keyName(key), { key, entry }]));
    for (const name of wanted) {
      const hit = entries.get(name);
      if (hit) {
        const found = fromEntry(hit.entry ?? {}, `${file}: auths["${hit.key}"]`);
        if (found) return found;
      }
    }
    if (auth.credsStore) {
      const found = fromHelper(auth.credsStore, domain === 'docker.io' ? 'https://index.docker.io/v1/' : domain, file);
      if (found) return found;
    }
  }
  return undefined;
}

/** Record credentials for `domain` in `file` (auth.json's shape), 0600, other entries kept. */
export function storeCredentials(file: string, domain: string, username: string, password: string): void {
  const auth = readAuthFile(file) ?? {};
  auth.auths = { ...auth.auths, [domain]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(auth, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Forget `domain`'s credentials in `file`; whether there were any. */
export function removeCredentials(file: string, domain: string): boolean {
  const auth = readAuthFile(file);
  if (!auth?.auths?.[domain]) return false;
  delete auth.auths[domain];
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(auth, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
  return true;
}
