/**
 * Platforms (os/architecture[/variant]) as image indexes describe them,
 * and which manifest of an index a pull or an import takes: the one for
 * the platform asked (`--platform`), by default this machine's, as
 * containerd's platform matcher does (an amd64 machine takes amd64; arm64
 * takes arm64, its variant v8 when one is named; arm takes the variant
 * asked or the highest up to v7).
 */
import { TsrunError } from '../errors';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Node's process.arch in the names image indexes use (GOARCH). */
const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  mips64el: 'mips64le',
  loong64: 'loong64',
};

export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  return { os: 'linux', architecture, ...(architecture === 'arm64' ? { variant: 'v8' } : {}) };
}

/** Operating systems a one-word --platform may name (then the architecture is this machine's). */
const OSES = new Set([
  'linux',
  'windows',
  'darwin',
  'freebsd',
  'netbsd',
  'openbsd',
  'solaris',
  'illumos',
  'aix',
  'plan9',
]);

/**
 * "linux/arm64/v8", "linux/amd64", as docker's --platform reads them; one
 * word is an OS ("linux": this machine's architecture) or an architecture
 * ("arm64": on linux).
 */
export function parsePlatform(text: string, what = '--platform'): Platform {
  const parts = text.toLowerCase().split('/');
  if (parts.some((p) => !/^[a-z0-9._-]+$/.test(p)) || parts.length > 3)
    throw new TsrunError(`${what} "${text}": expected OS/ARCH[/VARIANT], such as linux/amd64`);
  const [os, architecture, variant] =
    parts.length > 1 ? parts : OSES.has(parts[0]) ? [parts[0], hostPlatform().architecture] : ['linux', parts[0]];
  if (os !== 'linux') throw new TsrunError(`${what} "${text}": tsrun runs linux images only`);
  const normal =
    architecture === 'x86_64' || architecture === 'x86-64'
      ? 'amd64'
      : architecture === 'aarch64'
        ? 'arm64'
        : architecture;
  return { os, architecture: normal, ...(variant ? { variant } : normal === 'arm64' ? { variant: 'v8' } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Whether an index entry's platform is `want` (a missing arm64 variant is v8, as containerd reads it). */
export function platformMatches(entry: Partial<Platform> | undefined, want: Platform): boolean {
  if (!entry || entry.os !== want.os || entry.architecture !== want.architecture) return false;
  const variant = entry.variant ?? (entry.architecture === 'arm64' ? 'v8' : undefined);
  if (want.variant === undefined || variant === undefined) return true;
  if (want.architecture === 'arm') return variant <= want.variant; // v7 runs v6 and v5
  return variant === want.variant;
}

/**
 * The best entry of an index for `want`: an exact variant first, then the
 * highest compatible one; undefined when none runs there.
 */
export function choosePlatform<T extends { platform?: Partial<Platform> }>(
  entries: T[],
  want: Platform,
): T | undefined {
  const fitting = entries.filter((e) => platformMatches(e.platform, want));
  const exact = fitting.find(
    (e) => (e.platform?.variant ?? (e.platform?.architecture === 'arm64' ? 'v8' : undefined)) === want.variant,
  );
  if (exact) return exact;
  return fitting.sort((a, b) => (b.platform?.variant ?? '').localeCompare(a.platform?.variant ?? ''))[0];
}
