/**
 * Entering a user's store namespace (user-store.ts says what it is and
 * why): tsrun-init makes a new user and mount namespace, this tsrun writes
 * the user's full map into it (newuidmap and newgidmap, idmap.ts), and the
 * helper runs tsrun itself there as root of that namespace.  The same
 * launch as a container's process (launch.ts); nothing of JavaScript runs
 * in the cloned child before its execve.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';
import { writeIdMaps } from '../idmap';
import { launch } from '../launch';
import { native } from '../native';
import { compileStoreNamespacePlan } from '../plan';
import { encodePlan } from '../plan-format';
import { type Platform, realPlatform } from '../platform';
import { checkStoreMaps, STORE_NAMESPACE_ENV, userStoreMaps } from './user-store';

/** sun_path holds 108 bytes, the terminating NUL among them. */
const MAX_SOCKET_PATH = 107;

/** tsrun's own command: the compiled executable, or Node and tsrun's script. */
export function selfCommand(): string[] {
  if (process.versions.bun) return [process.execPath];
  return [process.execPath, ...process.execArgv, process.argv[1]];
}

/**
 * Run tsrun with `args` in the store namespace of `store` (absolute), its
 * stdio ours; returns its exit status.  `what` names the work in errors.
 * The store's recorded map must be the one the user has now.
 */
export function runInStoreNamespace(
  store: string,
  args: string[],
  what: string,
  platform: Platform = realPlatform,
): number {
  const maps = userStoreMaps();
  checkStoreMaps(store, maps, what);
  const env = Object.entries({ ...process.env, [STORE_NAMESPACE_ENV]: '1', TSRUN_STORE: store })
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const command = [...selfCommand(), ...args];
  const plan = encodePlan(compileStoreNamespacePlan(command, env, process.cwd()));
  const pid = launch(
    {
      verb: 'image',
      plan,
      fifoFd: -1,
      consoleFd: -1,
      preserveFds: 0,
      cgroup: null,
      onUsernsReady: (child) => {
        try {
          writeIdMaps(child, maps.uidMappings, maps.gidMappings, platform);
        } catch (err) {
          // Its maps come from /etc/subuid and /etc/subgid, not from a config's linux.*Mappings.
          throw new TsrunError(
            `the user's store namespace: ${(err as Error).message.replace(/^linux\.(uid|gid)Mappings: /, '$1 map: ')}`,
          );
        }
      },
      describeFailure: (f) => `${what}: store namespace: ${f.detail}: ${platform.strerror(f.errno).toLowerCase()}`,
    },
    platform,
  );
  const r = native.waitPid(pid, false)!;
  return r.code ?? 128 + (r.signal ?? 0);
}

/** Like runInStoreNamespace, but its failure is an error of ours (its own message is already on stderr). */
export function inStoreNamespaceOrFail(store: string, args: string[], what: string): void {
  const status = runInStoreNamespace(store, args, what);
  if (status !== 0) throw new TsrunError(`${what}: failed in the store namespace (status ${status})`);
}

/**
 * Remove trees of a user's store (layers, a container's upper and work),
 * in its store namespace: their directories may belong to subordinate ids.
 */
export function removeInStoreNamespace(store: string, trees: string[]): void {
  if (trees.length === 0) return;
  inStoreNamespaceOrFail(store, ['store-helper', 'remove', store, ...trees], `remove from the image store ${store}`);
}

/**
 * A container's overlay of a user's store as a detached mount, made in its
 * store namespace and passed back over a unix socket in the store's tmp/
 * (0700, the user's): its fd.
 */
export function overlayFromStoreNamespace(store: string, key: string, layers: string[], what: string): number {
  const socket = path.join(store, 'tmp', `${key}.sock`);
  // Not an abstract socket, which any local user could reach first and hand us a mount of its own.
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH)
    throw new TsrunError(
      `${what}: the image store's path ${store} is too long for the unix socket that brings the overlay back (${socket} is over ${MAX_SOCKET_PATH} bytes); use a store with a shorter path`,
    );
  fs.rmSync(socket, { force: true });
  const listener = native.listenUnix(socket);
  try {
    inStoreNamespaceOrFail(store, ['store-helper', 'open-rootfs', socket, store, key, what, ...layers], what);
    // It connected and sent before it exited: the connection waits in the backlog with the fd in it.
    const conn = native.acceptUnix(listener, 1000);
    try {
      return native.recvFd(conn, 1000);
    } finally {
      native.close(conn);
    }
  } finally {
    native.close(listener);
    fs.rmSync(socket, { force: true });
  }
}
