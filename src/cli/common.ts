/**
 * What every verb shares: the global flags, the state store they point at,
 * output that never touches process.stdout (Node would make an inherited
 * pipe non-blocking under the container), and the one-line error report.
 */
import { type Command } from './args';
import fs = require('fs');
import path = require('path');
import type { CreateOptions } from '../lib/container';
import type { BundleOverrides } from '../lib/image/convert';
import { errorLine, TsrunError } from '../lib/errors';
import { logError, toStderr } from '../lib/log';
import { inUserNamespace } from '../lib/host';
import { StateStore } from '../lib/state';

export interface GlobalOptions {
  /** undefined: defaultStateRoot() */
  root?: string;
  log?: string;
  logFormat?: string;
  debug?: boolean;
  systemdCgroup?: boolean;
  rootless?: string;
  criu?: string;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function storeOf(cmd: Command): StateStore {
  const given = globals(cmd).root;
  if (given !== undefined) return new StateStore(given);
  const root = defaultStateRoot();
  // Anything but /run/tsrun is the user's default, from $XDG_RUNTIME_DIR.
  const store = new StateStore(root, root !== '/run/tsrun');
  store.refuseForeignRoot();
  return store;
}

/**
 * --root when it is not given, as runc picks its own: /run/tsrun for root;
 * for another user, who cannot write /run, $XDG_RUNTIME_DIR/tsrun (the
 * user's own tmpfs, made by the login manager), else /run/tsrun all the
 * same, which then fails naming --root.  Root in a user namespace (an
 * engine's rootless one) counts as the user, unless $USER says root, as
 * runc decides it.
 */
export function defaultStateRoot(
  euid = process.geteuid?.() ?? 0,
  env = process.env,
  inUserns: () => boolean = inUserNamespace,
): string {
  const runtimeDir = env.XDG_RUNTIME_DIR;
  // /proc/self/uid_map is read only where it can matter: not on an engine's call as root without XDG_RUNTIME_DIR.
  if (!runtimeDir || (euid === 0 && (env.USER === 'root' || !inUserns()))) return '/run/tsrun';
  return `${runtimeDir.replace(/\/+$/, '')}/tsrun`;
}

/**
 * Whether cgroups are handled as for an unprivileged user (--rootless, as
 * runc's): a cgroup the user may not create is left out rather than an
 * error, as long as no limit needs it.  "auto" (the default) is so for any
 * user but root, and for root in a user namespace.  The user namespace,
 * the id maps and the rest follow the effective uid, whatever this says,
 * as in runc.
 */
export function rootlessCgroups(
  cmd: Command,
  euid = process.geteuid?.() ?? 0,
  inUserns: () => boolean = inUserNamespace,
): boolean {
  // main.ts refused any other value before the verb ran.
  const value = rootlessValue(globals(cmd).rootless ?? 'auto');
  if (value !== 'auto') return value === 'true';
  if (euid !== 0) return true;
  // Root in a user namespace (an engine's rootless one), as runc: with cgroupfs, whether its cgroups are
  // writable cannot be known, and the rootless manager uses what is; with systemd, the manager to ask is
  // the user's own, on its session bus (rootless podman with cgroup_manager = "systemd").
  return inUserns();
}

/**
 * --rootless as runc reads it (parseBoolOrAuto): empty or any case of
 * "auto", or what Go's strconv.ParseBool takes (1, t, T, TRUE, true, True,
 * and the same for false); undefined for anything else.
 */
export function rootlessValue(text: string): 'true' | 'false' | 'auto' | undefined {
  if (text === '' || text.toLowerCase() === 'auto') return 'auto';
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return 'true';
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return 'false';
  return undefined;
}

/** The flag, as every command that reads the image store takes it (and tsrun and tsrun image before their verbs). */
export const STORE_FLAG: [string, string] = [
  '--store <dir>',
  "the image store (default: $TSRUN_STORE, or /var/lib/tsrun; a user's: $XDG_DATA_HOME/tsrun)",
];

/**
 * The image store's directory: --store where it is given (after the verb,
 * after `image`, or before the verb, the nearest winning), then
 * $TSRUN_STORE, then /var/lib/tsrun for root and $XDG_DATA_HOME/tsrun
 * (~/.local/share/tsrun) for a user (src/lib/image/user-store.ts).
 */
export function imageStoreDir(cmd: Command): string {
  const { defaultStoreDir } = require('../lib/image/store') as typeof import('../lib/image/store');
  return (cmd.optsWithGlobals().store as string | undefined) || process.env.TSRUN_STORE || defaultStoreDir();
}

/**
 * A user's command that writes its store's trees (import, bundle --copy)
 * runs whole in the store's namespace (src/lib/image/user-store.ts): its
 * exit status, or undefined for root (and in that namespace), which runs
 * it here.
 */
export function inUserStoreNamespace(cmd: Command, what: string): number | undefined {
  if (process.geteuid?.() === 0) return undefined;
  const { runInStoreNamespace } =
    require('../lib/image/store-namespace') as typeof import('../lib/image/store-namespace');
  return runInStoreNamespace(path.resolve(imageStoreDir(cmd)), process.argv.slice(2), what);
}

export function out(text: string): void {
  fs.writeSync(1, text);
}

/** "tsrun: create c1: <reason>" on stderr and in the log; the exit status is non-zero. */
export function reportError(verb: string, id: string | undefined, err: unknown, failureStatus = 1): number {
  const reason = errorLine(err);
  // runc's shape: "tsrun: create c1: <reason>".
  const where = [verb, id].filter(Boolean).join(' ');
  const line = (where ? `${where}: ${reason}` : reason).replace(/\s*\n\s*/g, ' ');
  logError(line);
  toStderr(`tsrun: ${line}\n`);
  if (!(err instanceof TsrunError) && process.env.TSRUN_DEBUG_STACK && err instanceof Error) toStderr(`${err.stack}\n`);
  return err instanceof TsrunError && err.exitCode !== 1 ? err.exitCode : failureStatus;
}

/** Wrap a verb's body: errors become one line and the exit code; a number result is the exit code. */
/**
 * `failureStatus`: the exit status of tsrun's own failures.  1, as runc's
 * verbs, except exec: runc's exec fails with 255, so a caller can tell its
 * failure from the exec'd program's own status (which it passes through).
 */
export function verb<A extends unknown[]>(
  name: string,
  body: (...args: A) => void | number | Promise<void | number>,
  idOf: (...args: A) => string | undefined = (...args) => (typeof args[0] === 'string' ? args[0] : undefined),
  failureStatus = 1,
): (...args: A) => Promise<void> {
  // A plain function, so the parser's `this` (the command) reaches the body.
  return async function (this: unknown, ...args: A) {
    try {
      const code = await body.apply(this, args);
      process.exitCode = typeof code === 'number' ? code : 0;
    } catch (err) {
      process.exitCode = reportError(name, idOf(...args), err, failureStatus);
    }
  };
}

export function parseCount(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new TsrunError(`${flag}: "${value}" is not a non-negative integer`);
  return Number(value);
}

export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The flags that shape a bundle made from an image: `tsrun bundle`, and create/run --image. */
export function withImageOptions(cmd: Command): Command {
  return cmd
    .option(...STORE_FLAG)
    .option('-e, --env <name=value>', 'set an environment variable (repeatable)', collect, [])
    .option('--cwd <dir>', "the process's working directory (default: the image's WorkingDir)")
    .option('--user <user[:group]>', 'run as this user, resolved in the image (default: its User)')
    .option('--entrypoint <path>', 'replace the image\'s Entrypoint (and drop its Cmd); "" clears it')
    .option('--hostname <name>', "the container's hostname")
    .option('-t, --tty', 'give the process a terminal')
    .option('--read-only', 'mount the rootfs read-only')
    .option(
      '--pull <policy>',
      'pull the image from its registry: missing (when not in the store), always, never',
      'missing',
    )
    .option(...PLATFORM_FLAG)
    .option(...TLS_VERIFY_FLAG)
    .option(...CERT_DIR_FLAG)
    .option(...AUTHFILE_FLAG)
    .option(...CREDS_FLAG);
}

/** The registry flags of `image pull`, `run --image` and the rest, as podman names them. */
export function withRegistryOptions(cmd: Command): Command {
  return cmd
    .option(...TLS_VERIFY_FLAG)
    .option(...CERT_DIR_FLAG)
    .option(...AUTHFILE_FLAG);
}

export const CERT_DIR_FLAG = [
  '--cert-dir <dir>',
  "the registry's CA certificates (*.crt) and client certificate (*.cert, *.key), instead of certs.d",
] as const;
export const AUTHFILE_FLAG = [
  '--authfile <file>',
  'the credentials file (auth.json or docker config.json) instead of the default ones',
] as const;
export const CREDS_FLAG = ['--creds <user:password>', "the registry's credentials, instead of a file's"] as const;

export const PLATFORM_FLAG = [
  '--platform <os/arch[/variant]>',
  "the platform to pull from a multi-platform image (default: this machine's)",
] as const;
export const TLS_VERIFY_FLAG = [
  '--tls-verify <bool>',
  "false: reach the image's registry without verifying its TLS certificate, or over plain HTTP",
  'true',
] as const;

const IMAGE_ONLY = [
  'store',
  'env',
  'cwd',
  'user',
  'entrypoint',
  'hostname',
  'tty',
  'readOnly',
  'pull',
  'platform',
  'tlsVerify',
  'certDir',
  'authfile',
  'creds',
];

/** The pull options given on `cmd` for image `ref`. */
export function pullOptionsOf(cmd: Command, ref: string): import('../lib/image/pull').PullOptions {
  const o = cmd.opts();
  const verify = String(o.tlsVerify);
  if (verify !== 'true' && verify !== 'false') throw new TsrunError(`--tls-verify "${verify}": true or false`);
  const { parseReference } = require('../lib/image/reference') as typeof import('../lib/image/reference');
  const { parsePlatform } = require('../lib/image/platform') as typeof import('../lib/image/platform');
  let credentials: import('../lib/image/pull').PullOptions['credentials'];
  if (o.creds !== undefined) {
    const text = String(o.creds);
    const colon = text.indexOf(':');
    if (colon <= 0) throw new TsrunError('--creds: expected USER:PASSWORD');
    const given = { username: text.slice(0, colon), password: text.slice(colon + 1), source: '--creds' };
    credentials = () => given;
  } else if (o.authfile !== undefined) {
    const file = path.resolve(String(o.authfile));
    if (!fs.existsSync(file)) throw new TsrunError(`--authfile ${o.authfile}: no such file`);
    const { credentialsFor } = require('../lib/registry/credentials') as typeof import('../lib/registry/credentials');
    credentials = (domain, repository) => credentialsFor(domain, repository, [file]);
  }
  return {
    platform: o.platform === undefined ? undefined : parsePlatform(o.platform as string),
    insecure: verify === 'false' ? [parseReference(ref).domain] : [],
    certDir: o.certDir === undefined ? undefined : path.resolve(String(o.certDir)),
    credentials,
  };
}

/** The registry flags given, to pass on to `tsrun image pull` in a user's store namespace. */
function registryArgs(cmd: Command): string[] {
  const o = cmd.opts();
  return [
    `--tls-verify=${String(o.tlsVerify)}`,
    ...(o.platform ? ['--platform', String(o.platform)] : []),
    ...(o.certDir ? ['--cert-dir', path.resolve(String(o.certDir))] : []),
    ...(o.authfile ? ['--authfile', path.resolve(String(o.authfile))] : []),
    ...(o.creds ? ['--creds', String(o.creds)] : []),
  ];
}

/** Pull `ref` into `store` with the display on a terminal; the name it has in the store. */
export async function pullShown(
  store: import('../lib/image/store').ImageStore,
  ref: string,
  options: import('../lib/image/pull').PullOptions,
): Promise<import('../lib/image/pull').PullResult> {
  const { pullImage } = require('../lib/image/pull') as typeof import('../lib/image/pull');
  const { pullDisplay } = require('./pull-progress') as typeof import('./pull-progress');
  const display = pullDisplay();
  try {
    return await pullImage(store, ref, { ...options, onProgress: display?.update });
  } finally {
    display?.finish();
  }
}

/**
 * run/create --image and bundle: pull the image first as --pull says
 * (missing: only when the store has no image by that name).  A user's
 * store is written in its store namespace, by `tsrun image pull` there.
 */
export async function pullIfNeeded(cmd: Command, ref: string): Promise<void> {
  const o = cmd.opts();
  const policy = String(o.pull);
  if (!['missing', 'always', 'never'].includes(policy))
    throw new TsrunError(`--pull "${policy}": missing, always or never`);
  const options = pullOptionsOf(cmd, ref);
  if (policy === 'never') return;
  const { ImageStore } = require('../lib/image/store') as typeof import('../lib/image/store');
  const store = new ImageStore(imageStoreDir(cmd));
  let missing: TsrunError | undefined;
  if (policy === 'missing') {
    try {
      store.resolve(ref);
      return;
    } catch (err) {
      if (!(err instanceof TsrunError) || !/is not in the store/.test(err.message)) throw err;
      missing = err;
    }
  }
  // Not in the store, and the pull failed too: both said, the store first (a name typed wrong, no network).
  const explain = (err: unknown): never => {
    if (missing && err instanceof TsrunError)
      throw new TsrunError(`${missing.message}, and pulling it failed: ${err.message}`);
    throw err;
  };
  if (process.geteuid?.() !== 0) {
    const { inStoreNamespaceOrFail } =
      require('../lib/image/store-namespace') as typeof import('../lib/image/store-namespace');
    try {
      inStoreNamespaceOrFail(
        path.resolve(store.root),
        // --quiet: a name on stdout would be taken for the container's output; the display goes too.
        ['image', 'pull', '--quiet', ...registryArgs(cmd), ref],
        'pull',
      );
    } catch (err) {
      explain(err);
    }
    return;
  }
  await pullShown(store, ref, options).catch(explain);
}

/** The overrides given on the command line; `command` (after --) replaces the image's Cmd. */
export function overridesOf(cmd: Command, command: string[]): BundleOverrides {
  const o = cmd.opts();
  return {
    command: command.length ? command : undefined,
    entrypoint: o.entrypoint as string | undefined,
    env: o.env as string[],
    cwd: o.cwd as string | undefined,
    user: o.user as string | undefined,
    hostname: o.hostname as string | undefined,
    tty: !!o.tty,
    readOnly: !!o.readOnly,
  };
}

/** The flags create and run share, as runc has them, and --image. */
export function withCreateOptions(cmd: Command): Command {
  return withImageOptions(
    cmd
      .argument('<id>')
      .argument('[command...]', "with --image: the command, replacing the image's Cmd (after --)")
      .option('-b, --bundle <path>', 'bundle directory holding config.json', '.')
      .option('--image <ref>', 'make the bundle from this image in the store (tsrun image import)')
      .option('--pid-file <path>', 'write the init pid here')
      .option('--console-socket <path>', 'unix socket that receives the pty master (process.terminal)')
      .option('--preserve-fds <n>', 'pass this many fds after stdio into the container', '0')
      .option('--no-pivot', 'use move+chroot instead of pivot_root (ramfs roots)')
      .option('--no-new-keyring', 'do not create a session keyring for the container'),
  );
}

export function createOptionsOf(cmd: Command, id: string, command: string[]): CreateOptions {
  const o = cmd.opts();
  if (!o.image) {
    // Given on the command line and meaning something: --tty=false and --env with nothing are no harm.
    const stray = IMAGE_ONLY.find(
      (k) => cmd.getOptionValueSource(k) === 'cli' && o[k] !== false && !(Array.isArray(o[k]) && !o[k].length),
    );
    if (stray) throw new TsrunError(`--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: only with --image`);
    if (command.length)
      throw new TsrunError(
        `unexpected arguments after the id: ${command.join(' ')} (a command is taken only with --image)`,
      );
  } else if (cmd.getOptionValueSource('bundle') === 'cli') {
    throw new TsrunError('--bundle and --image: give one of them');
  }
  return {
    id,
    bundle: o.bundle as string,
    image: o.image
      ? { ref: o.image as string, store: imageStoreDir(cmd), overrides: overridesOf(cmd, command) }
      : undefined,
    pidFile: o.pidFile as string | undefined,
    consoleSocket: o.consoleSocket as string | undefined,
    preserveFds: parseCount(o.preserveFds as string, '--preserve-fds'),
    noPivot: o.pivot === false,
    systemdCgroup: !!globals(cmd).systemdCgroup,
    rootlessCgroups: rootlessCgroups(cmd),
    noNewKeyring: o.newKeyring === false,
  };
}
