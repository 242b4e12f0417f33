/**
 * Shared test harness: real bundles on disk, the real tsrun binary, and
 * checks that nothing is left behind.  Integration tests need root.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tar from 'tar-stream';
import { type Config } from '../src/lib/config';
import { readHierarchies } from '../src/lib/cgroup/manager';
import { cgroupManagerFor } from '../src/lib/cgroup';
import { PROJECT_ROOT } from '../src/lib/native';
import { baseConfig } from './fixtures';

export { PROJECT_ROOT, baseConfig };
export const TSRUN = path.join(PROJECT_ROOT, 'bin', 'tsrun');
export const FIXTURE_ROOTFS = path.join(PROJECT_ROOT, 'spec-fixtures', 'busybox', 'rootfs');
export const IS_ROOT = process.getuid?.() === 0;

/**
 * What is older than tsc's output in dist/: the executable (dist/tsrun,
 * which every test runs) and the Node build's bundle (dist/tsrun.js).
 * After a bare `tsc` the tests would run yesterday's executable and pass
 * or fail on code that is no longer there; `npm run build` makes all three.
 */
export function staleBuilds(): string[] {
  const compiled = fs.statSync(path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js')).mtimeMs;
  return ['tsrun', 'tsrun.js']
    .map((f) => path.join(PROJECT_ROOT, 'dist', f))
    .filter((f) => !fs.existsSync(f) || fs.statSync(f).mtimeMs < compiled);
}

/**
 * The native parts older than their C sources (binding.gyp's lists): the
 * addon, and the static helpers native/Makefile builds.  npm run build
 * does not rebuild them; npx node-gyp build does both.
 */
export function staleNative(): string[] {
  const newest = (files: string[]): number =>
    Math.max(...files.map((f) => fs.statSync(path.join(PROJECT_ROOT, 'native', f)).mtimeMs));
  const addonSources = newest([
    'addon.c',
    'seccomp.c',
    'layer.c',
    'overlay.c',
    'remove.c',
    'netdev.c',
    'plan.h',
    'plan-ops.h',
  ]);
  // Each helper's prerequisites in native/Makefile.
  const built: Array<[string, number]> = [
    ['build/Release/tsrun_native.node', addonSources],
    ['native/out/tsrun-init', newest(['init.c', 'plan.h', 'plan-ops.h', 'plan-decode.h', 'sched-attr.h', 'Makefile'])],
    ['native/out/tsrun-checker', newest(['checker.c', 'sched-attr.h', 'Makefile'])],
    ['native/out/tsrun-seccomp-agent', newest(['seccomp-agent.c', 'Makefile'])],
  ];
  return built
    .filter(
      ([f, sources]) =>
        !fs.existsSync(path.join(PROJECT_ROOT, f)) || fs.statSync(path.join(PROJECT_ROOT, f)).mtimeMs < sources,
    )
    .map(([f]) => f);
}

const stale = staleBuilds();
if (stale.length) throw new Error(`${stale.join(' and ')} older than tsc's output in dist/src: run npm run build`);
const staleC = staleNative();
if (staleC.length)
  throw new Error(`${staleC.join(', ')} older than their C sources in native/: run npx node-gyp build`);

/** Minimal stand-in for the parts of tap's Test we use, so helpers do not depend on tap's types. */
export interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

let counter = 0;
/** A container id unique to this test process. */
export function uniqueId(prefix = 't'): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** argv as one sh command line, each word single-quoted. */
export function shellQuote(argv: string[]): string {
  return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
}

export function tempDir(t: TestLike, prefix = 'tsrun-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Bundle {
  dir: string;
  rootfs: string;
  config: Config;
  /** A --root for this bundle's containers, removed at teardown. */
  root: string;
}

/**
 * A bundle in a fresh temp dir with its own copy of the busybox rootfs
 * (so tests may change it), and config.json written from `mutate(baseConfig())`.
 */
export function makeBundle(t: TestLike, mutate: (c: Config) => void = () => {}, args?: string[]): Bundle {
  if (!fs.existsSync(path.join(FIXTURE_ROOTFS, 'bin', 'checker'))) {
    throw new Error(`build the fixture first: spec-fixtures/make-rootfs.sh ${FIXTURE_ROOTFS}`);
  }
  const dir = tempDir(t, 'tsrun-bundle-');
  const rootfs = path.join(dir, 'rootfs');
  const cp = spawnSync('cp', ['-a', FIXTURE_ROOTFS, rootfs]);
  if (cp.status !== 0) throw new Error(`cp rootfs: ${cp.stderr}`);
  const config = baseConfig(args);
  mutate(config);
  writeConfig(dir, config);
  const root = path.join(dir, 'state');
  return { dir, rootfs, config, root };
}

export function writeConfig(dir: string, config: Config): void {
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The command's pid (env -i execs it, so it is the command's own). */
  pid?: number;
}

/**
 * The environment tsrun runs with in tests: the test runner's own
 * variables (NODE_OPTIONS and friends, which tap uses to instrument child
 * processes) are left out so hooks and containers see only what we pass.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...extra };
}

/**
 * Run a command and wait.  Output goes through files, not pipes: a
 * container started by it may inherit its stdio and would keep a pipe open
 * until it exits.  With `cleanEnv` the test runner's variables stay out.
 */
export function runCommand(
  argv: string[],
  opts: {
    input?: string;
    timeoutMs?: number;
    cwd?: string;
    env?: Record<string, string>;
    stdin?: number;
    extraFds?: number[];
  } = {},
): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-out-'));
  try {
    const outFd = fs.openSync(path.join(dir, 'out'), 'w+');
    const errFd = fs.openSync(path.join(dir, 'err'), 'w+');
    const envArgs = Object.entries(cleanEnv(opts.env)).map(([k, v]) => `${k}=${v}`);
    const r: SpawnSyncReturns<Buffer> = spawnSync('/usr/bin/env', ['-i', ...envArgs, ...argv], {
      // `stdin` and `extraFds` (as fds 3, 4, ...) are fds the caller leaves open, as a careless engine would.
      input: opts.stdin === undefined ? (opts.input ?? '') : undefined,
      stdio: [opts.stdin ?? 'pipe', outFd, errFd, ...(opts.extraFds ?? [])],
      timeout: opts.timeoutMs ?? 60_000,
      cwd: opts.cwd,
    });
    fs.closeSync(outFd);
    fs.closeSync(errFd);
    return {
      status: r.status,
      signal: r.signal,
      stdout: fs.readFileSync(path.join(dir, 'out'), 'utf8'),
      stderr: fs.readFileSync(path.join(dir, 'err'), 'utf8'),
      pid: r.pid,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Run `tsrun --root ROOT ARGS...` and wait (runCommand). */
export function tsrun(root: string, args: string[], opts: Parameters<typeof runCommand>[1] = {}): RunResult {
  return runCommand([TSRUN, '--root', root, ...args], opts);
}

/** Pids of the tsrunAsync commands still running: Node reaps these itself, a subreaper test must not. */
export const asyncCommands = new Set<number>();

/**
 * `tsrun --root ROOT ARGS...` without waiting, for tests that keep many in
 * flight.  Output goes through files, as in runCommand; past `timeoutMs`
 * the command is killed and resolves with signal SIGKILL.
 */
export function tsrunAsync(
  root: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-out-'));
  const outFd = fs.openSync(path.join(dir, 'out'), 'w+');
  const errFd = fs.openSync(path.join(dir, 'err'), 'w+');
  const envArgs = Object.entries(cleanEnv(opts.env)).map(([k, v]) => `${k}=${v}`);
  const child = spawn('/usr/bin/env', ['-i', ...envArgs, TSRUN, '--root', root, ...args], {
    stdio: ['ignore', outFd, errFd],
  });
  fs.closeSync(outFd);
  fs.closeSync(errFd);
  if (child.pid) asyncCommands.add(child.pid);
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    // 'exit', not 'close': a container started by the command may hold its stdio open.
    child.on('exit', (status, signal) => {
      clearTimeout(timer);
      asyncCommands.delete(child.pid!);
      try {
        resolve({
          status,
          signal,
          stdout: fs.readFileSync(path.join(dir, 'out'), 'utf8'),
          stderr: fs.readFileSync(path.join(dir, 'err'), 'utf8'),
        });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/** Run `work` over `items` with at most `inFlight` at once; resolves when all are done. */
export async function inPool<T>(
  items: T[],
  inFlight: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await work(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, items.length) }, worker));
}

/** Read a pty master until the slave side is gone (EIO) or the deadline passes. */
export function drainPty(master: number, timeoutMs = 10_000): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let n: number;
    try {
      n = fs.readSync(master, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EIO') break;
      if (code === 'EAGAIN') continue;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `tsrun run` the bundle with the checker and parse its JSON report. */
export function runChecker(
  t: TestLike,
  mutate: (c: Config) => void = () => {},
  checkerArgs: string[] = [],
): { report: any; result: RunResult; bundle: Bundle } {
  const bundle = makeBundle(t, mutate, ['/bin/checker', ...checkerArgs]);
  const id = uniqueId();
  const result = tsrun(bundle.root, ['run', '-b', bundle.dir, id]);
  let report: any;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    throw new Error(`checker output is not JSON (exit ${result.status}): ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return { report, result, bundle };
}

/** Mount points whose path lies inside `dir` (a container's rootfs, say), from the host's view. */
export function mountsUnder(dir: string): string[] {
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((mp) => mp && (mp === dir || mp.startsWith(dir + '/')));
}

/** A process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Live processes of a bundle's container.  After pivot_root a container's
 * /proc/PID/root reads "/", so besides root and cwd links into the bundle
 * this also looks for the bundle's rootfs as the source of a mount in the
 * process's own mount namespace.
 */
export function bundleProcesses(bundle: Pick<Bundle, 'dir'>): number[] {
  const marker = `/${path.basename(bundle.dir)}/`;
  const ourMnt = fs.readlinkSync('/proc/self/ns/mnt');
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const pid = Number(name);
    try {
      const inside = ['root', 'cwd'].some((link) => {
        const target = fs.readlinkSync(`/proc/${pid}/${link}`);
        return target === bundle.dir || target.startsWith(bundle.dir + '/');
      });
      let mounted = false;
      if (!inside && fs.readlinkSync(`/proc/${pid}/ns/mnt`) !== ourMnt) {
        mounted = fs
          .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
          .split('\n')
          .some(
            (l) => (l.split(' ')[3] ?? '').includes(marker) || (l.split(' ')[3] ?? '').endsWith(marker.slice(0, -1)),
          );
      }
      if ((inside || mounted) && alive(pid)) pids.push(pid);
    } catch {
      // gone, a kernel thread, or not ours to read
    }
  }
  return pids;
}

/**
 * Nothing of container `id` remains: no state dir, no cgroup, no mounts
 * under the bundle, no process of its container.
 */
export function leftovers(bundle: Bundle, id: string, opts: { cgroups?: boolean } = {}): string[] {
  const found: string[] = [];
  // A container's default cgroup: its id below our own cgroup in every
  // hierarchy (and "/<id>", where tsrun once put it).  Skipped when another
  // live container holds the same id, as duplicate-id tests do.
  if (opts.cgroups !== false) {
    const dirs = new Set([...defaultCgroupDirs(id), ...readHierarchies().map((h) => path.join(h.mountPoint, id))]);
    for (const dir of dirs) if (fs.existsSync(dir)) found.push(`cgroup ${dir}`);
  }
  if (fs.existsSync(path.join(bundle.root, id))) found.push(`state dir ${path.join(bundle.root, id)}`);
  for (const mp of mountsUnder(bundle.dir)) found.push(`mount ${mp}`);
  for (const pid of bundleProcesses(bundle)) found.push(`process ${pid}`);
  return found;
}

/**
 * Where tsrun puts container `id` when the config names no cgroupsPath:
 * below the caller's (our) own cgroup in each hierarchy, as runc does.
 */
export function defaultCgroupDirs(id: string): string[] {
  return Object.values(
    cgroupManagerFor({ ociVersion: '1.3.0', root: { path: 'rootfs' } } as Config, id).describe().paths,
  );
}

/** Wait until `pred` holds, polling; false on timeout. */
export async function waitFor(pred: () => boolean, timeoutMs = 10_000, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return pred();
}

/** Delete a container if a test left it (so a failing test does not leak). */
export function cleanupContainer(t: TestLike, root: string, id: string): void {
  t.teardown(() => {
    tsrun(root, ['delete', '--force', id]);
  });
}

/** A tar archive of `entries` (tar-stream's packer), for tests that build layers and images. */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(header, content ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export type TarEntry = Partial<tar.Header> & { name: string; content?: Buffer | string };
