/**
 * One error type for everything the user should read: its message is the
 * single line printed after "tsrun: " (and logged), so it names the
 * container, the step, the path and the reason.
 */
export class TsrunError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Node's errno errors ("ENOENT: no such file or directory, open 'x'") as "x: no such file or directory". */
export function describeFsError(err: unknown, what: string): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    const reason = e.message.replace(/^[A-Z]+: /, '').replace(/, \w+( '.*')?$/, '');
    return `${what}: ${reason}`;
  }
  return `${what}: ${String((err as Error)?.message ?? err)}`;
}

/**
 * The one line for any error: a TsrunError's message as it is; one of
 * Node's fs errors as "<path>: <reason>" (ENOSPC on a full --root, EROFS,
 * EACCES), never its "ENOSPC: ..., open '<path>'" form.
 */
export function errorLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException & { dest?: string };
  if (!(err instanceof TsrunError) && typeof e.code === 'string' && e.syscall) {
    const where = e.dest ? `${e.path} -> ${e.dest}` : (e.path ?? e.syscall);
    return describeFsError(err, where);
  }
  return err.message;
}
