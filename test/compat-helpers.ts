/**
 * The differential harness of test/compat/ (issue 15): the same bundle and
 * the same command line, run under a reference runtime and under tsrun,
 * and what a caller sees compared.  The reference is Debian's runc 1.1.5
 * (scripts/setup.sh --engines installs it), or any runtime binary named by
 * TSRUN_COMPAT_REFERENCE (crun, a newer runc, ...).  Each runtime gets its
 * own --root beside the bundle and its own container id, so their state
 * and cgroups never meet.
 * Kept outside test/compat/ so tap does not run it as a test file.
 */
import * as fs from 'fs';
import * as path from 'path';
import { type Bundle, PROJECT_ROOT, runCommand, type RunResult, type TestLike, TSRUN } from './helpers';

export interface Runtime {
  name: string;
  bin: string;
}

export const REFERENCE: Runtime = { name: 'reference', bin: process.env.TSRUN_COMPAT_REFERENCE ?? '/usr/sbin/runc' };
export const TSRUN_RUNTIME: Runtime = { name: 'tsrun', bin: TSRUN };
export const RUNTIMES = [REFERENCE, TSRUN_RUNTIME];

/** The reference runtime is there to compare with (a missing one fails the test file, never skips it). */
export function referenceInstalled(): boolean {
  return fs.existsSync(REFERENCE.bin);
}

/** `RUNTIME --root <bundle.root>-<name> ARGS...`, with %ID% in args standing for this runtime's id. */
export function under(
  rt: Runtime,
  bundle: Bundle,
  id: string,
  args: string[],
  opts: Parameters<typeof runCommand>[1] = {},
): RunResult {
  return runCommand(
    [rt.bin, '--root', `${bundle.root}-${rt.name}`, ...args.map((a) => (a === '%ID%' ? idFor(rt, id) : a))],
    opts,
  );
}

/** This runtime's id for a scenario's container. */
export function idFor(rt: Runtime, id: string): string {
  return `${id}-${rt.name}`;
}

/** The same command line under every runtime, in turn; results by runtime name. */
export function underBoth(
  bundle: Bundle,
  id: string,
  args: string[],
  opts: Parameters<typeof runCommand>[1] = {},
): Record<string, RunResult> {
  return Object.fromEntries(RUNTIMES.map((rt) => [rt.name, under(rt, bundle, id, args, opts)]));
}

/** At teardown, delete --force the scenario's container under every runtime. */
export function cleanupBoth(t: TestLike, bundle: Bundle, id: string): void {
  t.teardown(() => {
    for (const rt of RUNTIMES) under(rt, bundle, id, ['delete', '--force', '%ID%']);
  });
}

/** What a caller compares by default: the exit status and the output. */
export function seen(r: RunResult): { status: number | null; stdout: string } {
  return { status: r.status, stdout: r.stdout };
}

/** The one list of intended differences from runc, with their reasons. */
export const DIFFERENCES_FILE = path.join(PROJECT_ROOT, 'docs', 'differences-from-runc.md');

/** The keys of docs/differences-from-runc.md: list items that start with `key` and a dash. */
export function listedDifferences(): string[] {
  return [...fs.readFileSync(DIFFERENCES_FILE, 'utf8').matchAll(/^- `([a-z0-9-]+)` — /gm)].map((m) => m[1]);
}

/**
 * This test shows a behaviour where tsrun differs from runc on purpose:
 * it must be listed (test/compat/differences.test.ts checks the converse,
 * that every listed one is shown by some test).
 */
export function differsOnPurpose(t: { ok(value: unknown, message: string): unknown }, key: string): void {
  t.ok(
    listedDifferences().includes(key),
    `differs from runc on purpose: "${key}" is listed in docs/differences-from-runc.md`,
  );
}

/** The in-container checker's report, less what differs from run to run, with each runtime's names made the same. */
export function comparableReport(report: any, names: string[]): Record<string, unknown> {
  let text = JSON.stringify(report);
  for (const name of names) text = text.split(name).join('NAME');
  const r = JSON.parse(text);
  delete r.fds;
  delete r.kernelRelease;
  r.namespaces = Object.keys(r.namespaces ?? {}).sort();
  // As a set: mountinfo's order follows when each mount was made (tsrun
  // builds some binds before it attaches them), not what the process sees.
  r.mounts = (r.mounts ?? [])
    .map((m: any) => `${m.mountpoint} ${m.fstype} ${m.options} ${m.super_options ?? m.superOptions}`)
    .sort();
  return r;
}
