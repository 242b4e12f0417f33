/**
 * Hooks that run in the runtime's namespace: prestart and createRuntime
 * (during create), poststart (start) and poststop (delete).  Each gets the
 * container state as JSON on stdin and its timeout; its own env if it
 * has one, else tsrun's (runc's hooks inherit runc's); and runc's working
 * directory: the bundle, except poststop run by a separate delete, which
 * runs where its caller is.
 * createContainer and startContainer run inside the container, from the
 * helper (OP_HOOK in native/init.c).
 */
import { type Hook } from './config';
import { TsrunError } from './errors';
import { native } from './native';

function envObject(env: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of env ?? []) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** Run one hook; throws a TsrunError naming the hook and how it failed. */
export function runHook(kind: string, hook: Hook, stateJson: string, cwd: string): void {
  const args = hook.args ?? [hook.path];
  // child_process loads only when a hook runs: it pulls in Node's streams, net and dgram.
  const { spawnSync } = require('child_process') as typeof import('child_process');
  const result = spawnSync(hook.path, args.slice(1), {
    argv0: args[0] ?? hook.path,
    env: hook.env ? envObject(hook.env) : process.env,
    cwd,
    input: stateJson,
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: hook.timeout ? hook.timeout * 1000 : undefined,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 20,
  });
  const stderr = result.stderr?.toString().trim().split('\n').pop() ?? '';
  const said = stderr ? ` (stderr: ${stderr})` : '';
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') throw new TsrunError(`${kind} hook ${hook.path} timed out after ${hook.timeout}s`);
    if (code === 'EPIPE') return checkStatus(kind, hook, result.status, result.signal, said);
    const errno = Math.abs((result.error as NodeJS.ErrnoException).errno ?? 0);
    const reason = errno ? native.strerror(errno).toLowerCase() : result.error.message;
    throw new TsrunError(`${kind} hook ${hook.path}: ${reason}`);
  }
  checkStatus(kind, hook, result.status, result.signal, said);
}

function checkStatus(
  kind: string,
  hook: Hook,
  status: number | null,
  signal: NodeJS.Signals | null,
  said: string,
): void {
  if (signal) throw new TsrunError(`${kind} hook ${hook.path} killed by ${signal}${said}`);
  if (status !== 0) throw new TsrunError(`${kind} hook ${hook.path} exited with status ${status}${said}`);
}

export function runHooks(kind: string, hooks: Hook[] | undefined, stateJson: string, cwd: string): void {
  for (const hook of hooks ?? []) runHook(kind, hook, stateJson, cwd);
}
