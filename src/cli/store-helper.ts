/**
 * `tsrun store-helper ...`: what a user's tsrun asks of the tsrun it runs
 * in its store namespace (src/lib/image/user-store.ts), and nothing else
 * runs.  Not a verb for people: main.ts takes it before the verbs, and it
 * refuses to run anywhere but in a store namespace.
 *
 *   store-helper remove STORE TREE...
 *       remove trees of the store (each strictly inside it)
 *   store-helper open-rootfs SOCKET STORE KEY WHAT DIFFID...
 *       make container KEY's overlay of the layers (lowest first) as a
 *       detached mount and send its fd to the unix socket SOCKET
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../lib/errors';
import { native } from '../lib/native';
import { removeTree } from '../lib/remove-tree';
import { overlayOfLayers } from '../lib/image/rootfs';
import { ImageStore, sourceOf } from '../lib/image/store';
import { inStoreNamespace } from '../lib/image/user-store';
import { reportError } from './common';

/** `tree`, if it lies strictly inside `store` (both absolute, no "..": what our own parent sends). */
function insideStore(store: string, tree: string): string {
  const resolved = path.resolve(tree);
  if (resolved !== tree || !resolved.startsWith(`${path.resolve(store)}/`))
    throw new TsrunError(`store-helper: ${tree} is not inside the image store ${store}`);
  return resolved;
}

export function storeHelper(args: string[]): number {
  try {
    if (!inStoreNamespace())
      throw new TsrunError("store-helper: tsrun's own helper, for a user's image store namespace only");
    const [action, ...rest] = args;
    if (action === 'remove') {
      const [store, ...trees] = rest;
      for (const tree of trees) removeTree(insideStore(store, tree));
      return 0;
    }
    if (action === 'open-rootfs') {
      const [socket, storeDir, key, what, ...layers] = rest;
      const store = new ImageStore(storeDir);
      const dir = insideStore(storeDir, store.useDir(key));
      if (!fs.existsSync(dir)) throw new TsrunError(`${what}: ${dir} is missing`);
      const mnt = overlayOfLayers(store, layers, dir, sourceOf(key), what);
      try {
        const conn = native.connectUnix(socket);
        try {
          native.sendFd(conn, mnt, Buffer.from('rootfs'));
        } finally {
          native.close(conn);
        }
      } finally {
        native.close(mnt);
      }
      return 0;
    }
    throw new TsrunError(`store-helper: unknown action ${JSON.stringify(action)}`);
  } catch (err) {
    return reportError('store-helper', undefined, err);
  }
}
