/**
 * Image references as docker and podman read them (the grammar and
 * normalisation of distribution/reference, which both use through
 * containers/image or moby): `[DOMAIN/]PATH[:TAG][@DIGEST]`.
 *
 * - The first component is a domain when it has a `.` or a `:` (a port),
 *   is `localhost`, or has an upper-case letter; otherwise the domain is
 *   `docker.io`.
 * - On `docker.io`, a one-component path is an official image:
 *   `busybox` is `docker.io/library/busybox`.
 * - With neither tag nor digest, the tag is `latest`.
 *
 * So `busybox`, `busybox:latest`, `library/busybox` and
 * `docker.io/library/busybox:latest` are one name; the store keeps names in
 * that canonical form, and `image ls` shows it (as podman does).
 */
import { TsrunError } from '../errors';

export interface Reference {
  domain: string;
  /** "library/busybox". */
  path: string;
  tag?: string;
  /** "sha256:<hex>". */
  digest?: string;
  /** Whether the text named a domain itself (podman also looks a short name up under localhost/). */
  domainGiven: boolean;
}

export const DEFAULT_DOMAIN = 'docker.io';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** distribution/reference's limit on a name (domain and path). */
const MAX_NAME = 255;

function invalid(text: string, why: string): never {
  throw new TsrunError(`image reference "${text}" is not valid: ${why}`);
}

export function parseReference(text: string): Reference {
  if (!text) invalid(text, 'it is empty');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) invalid(text, `"${digest}" is not a sha256 digest`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      invalid(text, `"${tag}" is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  const domainGiven = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  // Docker Hub's other names are docker.io, as distribution/reference normalises them.
  const domain = !domainGiven ? DEFAULT_DOMAIN : first === 'index.docker.io' ? DEFAULT_DOMAIN : first;
  let path = domainGiven ? rest.slice(slash + 1) : rest;
  if (domainGiven && !DOMAIN.test(domain)) invalid(text, `"${domain}" is not a registry host`);
  if (!path) invalid(text, 'it names no repository');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component))
      invalid(
        text,
        `"${component}" is not a repository name component (lower-case letters, digits and . _ - between them)`,
      );
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (`${domain}/${path}`.length > MAX_NAME) invalid(text, `the name is longer than ${MAX_NAME} characters`);
  return { domain, path, tag: tag ?? (digest ? undefined : 'latest'), digest, domainGiven };
}

/** "docker.io/library/busybox". */
export function repositoryOf(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** "docker.io/library/busybox:latest", "quay.io/x/y@sha256:...", both when both are given. */
export function formatReference(ref: Reference): string {
  return `${repositoryOf(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The canonical form of a reference typed or found in an archive. */
export function normalizeRef(text: string): string {
  return formatReference(parseReference(text));
}
