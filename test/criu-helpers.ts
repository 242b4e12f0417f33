/**
 * What the checkpoint tests share (test/integration/checkpoint*.test.ts):
 * whether CRIU works here, a counter bundle, and a runtime's detached
 * command with pipes for stdio, as an engine gives them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { type Bundle, makeBundle, runCommand, shellQuote, TSRUN, tsrun, waitFor } from './helpers';

export const criuWorks = spawnSync('criu', ['check'], { encoding: 'utf8' }).status === 0;

/** The counter every scenario runs: one line a tick, on stdout and in /tmp/count. */
export const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo $i; sleep 0.2; done';

export function counterBundle(
  t: Parameters<typeof makeBundle>[0],
  mutate: Parameters<typeof makeBundle>[1] = () => {},
): Bundle {
  return makeBundle(t, (c) => {
    c.process!.args = ['/bin/sh', '-c', COUNTER];
    // What `tsrun spec` gives too: masked files and read-only paths, which CRIU must be told of.
    c.linux!.maskedPaths = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'];
    c.linux!.readonlyPaths = ['/proc/bus', '/proc/sys'];
    mutate(c);
  });
}

/**
 * A runtime's detached command with pipes for its stdio, as an engine
 * gives them (conmon, the shim): `sleep` holds stdin open, `cat` copies
 * stdout and stderr into `out`.  The pipeline is a process group of its
 * own, ended at teardown.
 */
export function detachedWithPipes(t: Parameters<typeof makeBundle>[0], argv: string[], out: string): Promise<number> {
  const quoted = shellQuote(argv);
  const child = spawn('/bin/sh', ['-c', `sleep 100000 | ${quoted} 2>&1 | cat > '${out}'`], {
    detached: true,
    stdio: 'ignore',
  });
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  return new Promise((resolve) => {
    // Done once the runtime itself has returned (the pipeline lives on with the container).
    const started = Date.now();
    const poll = setInterval(() => {
      const r = spawnSync('pgrep', ['-g', String(child.pid), '-f', `^${argv[0]} `]);
      if (r.status !== 0 || Date.now() - started > 120_000) {
        clearInterval(poll);
        resolve(child.pid!);
      }
    }, 100);
  });
}

export function lastCount(file: string): number {
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
  return Number(lines[lines.length - 1] || 0);
}

export function firstCount(file: string): number {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  return Number(text.split('\n')[0] || 0);
}

/** runc's or tsrun's command line with its own --root. */
export function runtime(name: 'runc' | 'tsrun', root: string): (args: string[]) => ReturnType<typeof runCommand> {
  return name === 'tsrun'
    ? (args) => tsrun(root, args, { timeoutMs: 180_000 })
    : (args) => runCommand(['runc', '--root', root, ...args], { timeoutMs: 180_000 });
}

export function binaryOf(name: 'runc' | 'tsrun'): string {
  return name === 'tsrun' ? TSRUN : '/usr/sbin/runc';
}

/**
 * `tsrun run -d` of the bundle's counter with pipes for stdio (detachedWithPipes), once it counts: the file its
 * output goes to (out1 in the bundle).
 */
export async function startCounting(
  t: Parameters<typeof makeBundle>[0] & { ok(value: unknown, message: string): unknown },
  bundle: Bundle,
  id: string,
): Promise<string> {
  const out = path.join(bundle.dir, 'out1');
  await detachedWithPipes(t, [TSRUN, '--root', bundle.root, 'run', '-d', '-b', bundle.dir, id], out);
  t.ok(await waitFor(() => lastCount(out) >= 3, 30_000), 'the counter counts');
  return out;
}
