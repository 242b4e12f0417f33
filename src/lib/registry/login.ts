/**
 * `tsrun image login` and `logout`: credentials checked against the
 * registry, then kept where pulls look first (credentials.ts), 0600.
 */
import { TsrunError } from '../errors';
import { RegistryClient } from './client';
import { loginFile, removeCredentials, storeCredentials } from './credentials';
import { endpointOf } from './hosts';
import { parseReference } from '../image/reference';

/** "127.0.0.1:5000" of what a user types ("https://host:5000/", "docker.io", "index.docker.io"). */
export function registryDomain(text: string): string {
  const bare = text
    .replace(/^https?:\/\//, '')
    .replace(/\/v[12]\/?$/, '')
    .replace(/\/+$/, '');
  if (bare === 'index.docker.io' || bare === 'registry-1.docker.io') return 'docker.io';
  // A registry as the first component of a name: the reference grammar says which are hosts.
  const ref = (() => {
    try {
      return parseReference(`${bare}/x`);
    } catch {
      return undefined;
    }
  })();
  if (!ref || (!ref.domainGiven && bare !== 'docker.io') || bare.includes('/'))
    throw new TsrunError(`registry "${text}": expected HOST[:PORT] (a name with a "." or ":", or localhost)`);
  return bare;
}

export async function login(
  domain: string,
  username: string,
  password: string,
  opts: { insecure: string[]; certDir?: string; authfile?: string },
): Promise<string> {
  const creds = { username, password, source: 'login' };
  // The repository is not asked for: /v2/ and a scopeless token.
  await new RegistryClient(endpointOf(domain, opts.insecure, opts.certDir), '', () => creds).checkLogin();
  const file = opts.authfile ?? loginFile();
  storeCredentials(file, domain, username, password);
  return file;
}

export function logout(domain: string, authfile?: string): string {
  const file = authfile ?? loginFile();
  if (!removeCredentials(file, domain)) throw new TsrunError(`not logged in to ${domain} (${file})`);
  return domain;
}
