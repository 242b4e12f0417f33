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

export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const haveRegistry = (): boolean => fs.existsSync(REGISTRY_BIN) && fs.existsSync('/usr/bin/skopeo');

export async function startRegistry(t: TestLike & { teardown(fn: () => void): void }): Promise<Registry> {
  const dir = tempDir(t, 'tsrun-registry-');
  const storage = path.join(dir, 'storage');
  fs.mkdirSync(storage);
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

/** skopeo copy of an OCI layout's image `ref` (--all: an index with every platform) to `dest` (docker://...). */
export function skopeoPush(layout: string, ref: string, dest: string, opts: { all?: boolean } = {}): void {
  const r = spawnSync(
    'skopeo',
    [
      'copy',
      '-q',
      ...(opts.all ? ['--all'] : []),
      '--dest-tls-verify=false',
      `oci:${layout}:${ref}`,
      `docker://${dest}`,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status !== 0) throw new Error(`skopeo copy to ${dest}: ${r.stderr || r.error}`);
}

/** The file holding blob `digest` in the registry's filesystem storage. */
export function registryBlobFile(reg: Registry, digest: string): string {
  const hex = digest.slice(7);
  return path.join(reg.storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}
