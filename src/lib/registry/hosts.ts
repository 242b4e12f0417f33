/**
 * Where a registry named in a reference is, and how to reach it: the
 * endpoint's origin, its certs.d certificates, and whether it may be
 * reached without verified TLS.
 *
 * - `docker.io` is served at registry-1.docker.io, as docker and podman
 *   reach it.
 * - HTTPS first, always, verified against the system's CAs and certs.d.
 * - Plain HTTP only when there is no TLS at that address, and only for a
 *   registry the caller named with --tls-verify=false or one on a loopback
 *   address (localhost, 127.0.0.0/8, ::1), which docker reaches over HTTP
 *   without being told (its "insecure-registries" default).
 * - An unverified certificate only with --tls-verify=false.  Docker also
 *   accepts any certificate from a loopback registry; tsrun does not: a
 *   local user who gets to a loopback port first could otherwise present
 *   any certificate and be sent root's credentials over what looks like
 *   TLS (docs/images.md, "Pulling").
 * - Certificates, as docker and podman read them: in
 *   /etc/containers/certs.d/HOST[:PORT]/ and /etc/docker/certs.d/HOST[:PORT]/
 *   (and a user's ~/.config/containers/certs.d), `*.crt` are CAs trusted
 *   beside the system's, `NAME.cert` with `NAME.key` a client certificate.
 */
import fs = require('fs');
import path = require('path');
import type { TlsSettings } from './http';
import { TsrunError } from '../errors';
import { inStoreNamespace } from '../image/user-store';

/** The registry docker.io names. */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

export interface Endpoint {
  /** The name in references and credential files: "127.0.0.1:5000", "docker.io". */
  domain: string;
  /** The host[:port] requests go to. */
  host: string;
  /** Plain HTTP allowed where the address has no TLS: loopback, or named with --tls-verify=false. */
  plainHttp: boolean;
  /** Any certificate accepted: named with --tls-verify=false. */
  skipVerify: boolean;
  tls: TlsSettings;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** The certs.d directories looked in, most specific first. */
function certsDirs(): string[] {
  const dirs = ['/etc/containers/certs.d', '/etc/docker/certs.d'];
  const home = process.env.HOME;
  // A user's own, also as root of its store namespace (where its pulls run).
  if ((process.geteuid?.() !== 0 || inStoreNamespace()) && home)
    dirs.unshift(path.join(home, '.config', 'containers', 'certs.d'));
  return dirs;
}

/** The TLS settings certs.d gives `host` (every directory that has it adds its files). */
export function certsFor(host: string, dirs = certsDirs()): TlsSettings {
  const tls: TlsSettings = { ca: [] };
  for (const base of dirs) addCerts(tls, path.join(base, host));
  return tls;
}

/** The certificates of one directory (--cert-dir). */
export function certsIn(dir: string): TlsSettings {
  const tls: TlsSettings = { ca: [] };
  addCerts(tls, dir);
  return tls;
}

function addCerts(tls: TlsSettings, dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith('.crt')) tls.ca!.push(fs.readFileSync(file, 'utf8'));
    else if (name.endsWith('.cert')) {
      const key = file.replace(/\.cert$/, '.key');
      if (!fs.existsSync(key)) throw new TsrunError(`${file}: a client certificate without its key ${key}`);
      if (tls.cert === undefined) {
        tls.cert = fs.readFileSync(file, 'utf8');
        tls.key = fs.readFileSync(key, 'utf8');
      }
    } else if (name.endsWith('.key') && !fs.existsSync(file.replace(/\.key$/, '.cert')))
      throw new TsrunError(`${file}: a client key without its certificate ${file.replace(/\.key$/, '.cert')}`);
  }
}

/**
 * The endpoint of `domain`; `insecureDomains` are those named with
 * --tls-verify=false; `certDir` (--cert-dir) replaces the certs.d lookup.
 */
export function endpointOf(domain: string, insecureDomains: readonly string[] = [], certDir?: string): Endpoint {
  const host = domain === 'docker.io' ? DOCKER_HUB_ENDPOINT : domain;
  const skipVerify = insecureDomains.includes(domain);
  let tls: TlsSettings;
  if (certDir !== undefined) {
    if (!fs.statSync(certDir, { throwIfNoEntry: false })?.isDirectory())
      throw new TsrunError(`--cert-dir ${certDir}: no such directory`);
    tls = certsIn(certDir);
  } else tls = certsFor(host);
  return { domain, host, plainHttp: skipVerify || isLoopback(host), skipVerify, tls };
}
