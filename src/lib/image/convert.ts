/**
 * An image config into a runtime config.json, by image-spec conversion.md,
 * on top of `tsrun spec`'s defaults.  Pure: the image's /etc/passwd and
 * /etc/group come in as text, so all of it is unit-tested without root.
 *
 *   Entrypoint + Cmd      -> process.args (a command given replaces Cmd;
 *                            --entrypoint replaces Entrypoint and drops Cmd,
 *                            as docker run does)
 *   Env                   -> process.env (PATH added only when the image has none)
 *   WorkingDir            -> process.cwd
 *   User                  -> process.user, through the image's passwd/group
 *   os, architecture, ... -> org.opencontainers.image.* annotations
 *   Labels                -> annotations, taking precedence over those
 *   StopSignal            -> org.opencontainers.image.stopSignal
 *   ExposedPorts          -> org.opencontainers.image.exposedPorts
 */
import { type Config, ID_RANGE, MAX_ID, type User } from '../config';
import { TsrunError } from '../errors';
import { defaultSpec } from '../spec-default';
import { type StoreMaps } from './user-store';

/** The parts of an image config (image-spec config.md) that conversion reads. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  author?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    ExposedPorts?: Record<string, unknown> | null;
  };
}

/** What the caller may change: externally provided inputs, in conversion.md's terms. */
export interface BundleOverrides {
  /** Replaces Cmd. */
  command?: string[];
  /** Replaces Entrypoint (and drops Cmd); "" clears it. */
  entrypoint?: string;
  /** NAME=VALUE, added or replacing the image's. */
  env?: string[];
  cwd?: string;
  /** user[:group], resolved like Config.User. */
  user?: string;
  hostname?: string;
  tty?: boolean;
  readOnly?: boolean;
}

/** The image a bundle's rootfs comes from: create mounts it as an overlay. */
export const IMAGE_ANNOTATION = 'org.tsrun.image.id';
export const STORE_ANNOTATION = 'org.tsrun.image.store';
export const REF_ANNOTATION = 'org.tsrun.image.ref';
const RESERVED = [IMAGE_ANNOTATION, STORE_ANNOTATION, REF_ANNOTATION];

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ImageFiles {
  /** The image's /etc/passwd and /etc/group, if it has them. */
  passwd?: string;
  group?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parsePasswd(text = ''): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]) && /^\d+$/.test(f[3]))
    .map((f) => ({ name: f[0], uid: Number(f[2]), gid: Number(f[3]) }));
}

function parseGroup(text = ''): GroupEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[2]))
    .map((f) => ({ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

const isNumeric = (s: string): boolean => /^\d+$/.test(s) && Number(s) <= 0xffffffff;

/**
 * "user", "uid", "user:group", "uid:gid" (and the mixes) as process.user.
 * A name must exist in the image (conversion.md: MUST return an error);
 * additionalGids are filled only for a user given by name without a group.
 */
export function resolveUser(spec: string | undefined, files: ImageFiles, field: string): User {
  const user = resolveUserIds(spec, files, field);
  // Numbers from the image (or its passwd) past runc's range: (uid_t)-1 would leave the process root.
  for (const id of [user.uid, user.gid, ...(user.additionalGids ?? [])]) {
    if (id > MAX_ID) throw new TsrunError(`${field}: "${spec}" gives id ${id}, which is out of range: ${ID_RANGE}`);
  }
  return user;
}

function resolveUserIds(spec: string | undefined, files: ImageFiles, field: string): User {
  if (!spec) return { uid: 0, gid: 0 };
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? undefined : spec.slice(colon + 1);
  if (userPart === '' || groupPart === '') throw new TsrunError(`${field}: "${spec}" is not user[:group]`);
  const passwd = parsePasswd(files.passwd);
  const groups = parseGroup(files.group);
  let uid: number;
  let gid: number;
  let byName: PasswdEntry | undefined;
  if (isNumeric(userPart)) {
    uid = Number(userPart);
    gid = passwd.find((p) => p.uid === uid)?.gid ?? 0;
  } else {
    byName = passwd.find((p) => p.name === userPart);
    if (!byName) throw new TsrunError(`${field}: no user "${userPart}" in the image's /etc/passwd`);
    uid = byName.uid;
    gid = byName.gid;
  }
  if (groupPart !== undefined) {
    if (isNumeric(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((e) => e.name === groupPart);
      if (!g) throw new TsrunError(`${field}: no group "${groupPart}" in the image's /etc/group`);
      gid = g.gid;
    }
    return { uid, gid };
  }
  const user: User = { uid, gid };
  if (byName) {
    const extra = [
      ...new Set(groups.filter((g) => g.members.includes(byName!.name) && g.gid !== gid).map((g) => g.gid)),
    ].sort((a, b) => a - b);
    if (extra.length) user.additionalGids = extra;
  }
  return user;
}

/** NAME=VALUE lists merged: later entries replace earlier ones of the same name, in place. */
export function mergeEnv(base: string[], extra: string[]): string[] {
  const out = [...base];
  for (const entry of extra) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new TsrunError(`--env: "${entry}" is not NAME=VALUE`);
    const name = entry.slice(0, eq + 1);
    const at = out.findIndex((e) => e.startsWith(name) || e === name.slice(0, -1));
    if (at >= 0) out[at] = entry;
    else out.push(entry);
  }
  return out;
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new TsrunError(`image config ${field}: expected a list of strings`);
  return value;
}

/** image-spec conversion.md's annotations: implicit ones first, Labels over them. */
export function imageAnnotations(image: ImageConfig): Record<string, string> {
  const out: Record<string, string> = {};
  const implicit: Array<[string, unknown]> = [
    ['os', image.os],
    ['architecture', image.architecture],
    ['variant', image.variant],
    ['os.version', image['os.version']],
    ['os.features', image['os.features']?.join(',')],
    ['author', image.author],
    ['created', image.created],
    ['stopSignal', image.config?.StopSignal],
    ['exposedPorts', image.config?.ExposedPorts ? Object.keys(image.config.ExposedPorts).join(',') : undefined],
  ];
  for (const [key, value] of implicit)
    if (typeof value === 'string' && value !== '') out[`org.opencontainers.image.${key}`] = value;
  for (const [key, value] of Object.entries(image.config?.Labels ?? {})) {
    if (RESERVED.includes(key)) throw new TsrunError(`image config Labels: "${key}" is reserved for tsrun`);
    if (typeof value !== 'string') throw new TsrunError(`image config Labels.${key}: expected a string`);
    out[key] = value;
  }
  return out;
}

export interface ImageSource {
  /** sha256:... of the image config. */
  id: string;
  /** The store holding its layers (absolute). */
  store: string;
  /** The name it was asked for by. */
  ref: string;
}

/** The runtime config for a container of `image`: `tsrun spec` defaults, the image's settings, then the overrides. */
export function convertImageConfig(
  image: ImageConfig,
  source: ImageSource,
  files: ImageFiles,
  overrides: BundleOverrides = {},
  host: { cgroupNamespace: boolean; userStore?: StoreMaps } = { cgroupNamespace: false },
): Config {
  const ic = image.config ?? {};
  const entrypoint =
    overrides.entrypoint !== undefined
      ? overrides.entrypoint === ''
        ? []
        : [overrides.entrypoint]
      : stringList(ic.Entrypoint, 'Entrypoint');
  const cmd = overrides.command?.length
    ? overrides.command
    : overrides.entrypoint !== undefined
      ? []
      : stringList(ic.Cmd, 'Cmd');
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new TsrunError(`image ${source.ref} has no Entrypoint or Cmd: give a command`);

  const spec = defaultSpec({ rootless: false, cgroupNamespace: host.cgroupNamespace });
  const proc = spec.process!;
  proc.args = args;
  proc.terminal = !!overrides.tty;
  let env = stringList(ic.Env, 'Env');
  if (!env.some((e) => e.startsWith('PATH='))) env = [DEFAULT_PATH, ...env];
  if (overrides.tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  proc.env = mergeEnv(env, overrides.env ?? []);
  proc.cwd = overrides.cwd ?? (ic.WorkingDir || '/');
  if (!proc.cwd.startsWith('/'))
    throw new TsrunError(
      `${overrides.cwd !== undefined ? '--cwd' : 'image config WorkingDir'}: "${proc.cwd}" is not an absolute path`,
    );
  proc.user =
    overrides.user !== undefined
      ? resolveUser(overrides.user, files, '--user')
      : resolveUser(ic.User, files, 'image config User');
  if (overrides.hostname !== undefined) spec.hostname = overrides.hostname;
  // The overlay's upper dir takes the container's writes, as with any engine.
  spec.root = { path: 'rootfs', readonly: !!overrides.readOnly };
  if (host.userStore) {
    // A user's image (user-store.ts): a user namespace with the map its
    // store's files were written with, and, as runc's spec --rootless, no
    // resources (a user has a cgroup only where one is delegated).  The
    // network namespace stays: the user's namespace owns it, so sysfs mounts.
    const linux = spec.linux!;
    linux.namespaces = [...(linux.namespaces ?? []), { type: 'user' }];
    linux.uidMappings = host.userStore.uidMappings.map((m) => ({ ...m }));
    linux.gidMappings = host.userStore.gidMappings.map((m) => ({ ...m }));
    delete linux.resources;
  }
  spec.annotations = {
    ...imageAnnotations(image),
    [IMAGE_ANNOTATION]: source.id,
    [STORE_ANNOTATION]: source.store,
    [REF_ANNOTATION]: source.ref,
  };
  return spec;
}
