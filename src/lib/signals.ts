import { constants } from 'os';

// glibc reserves 32 and 33 for its own threading, so SIGRTMIN as seen by
// runc (and by `kill -l`) is 34.
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

// Aliases that share a number with a canonical name; the canonical one wins
// when turning a number back into a name.
const ALIASES = new Set(['SIGIOT', 'SIGPOLL', 'SIGUNUSED', 'SIGLOST', 'SIGINFO']);

const NUMBER_BY_NAME: ReadonlyMap<string, number> = new Map(
  Object.entries(constants.signals as Record<string, number>),
);

const NAME_BY_NUMBER: ReadonlyMap<number, string> = (() => {
  const names = new Map<number, string>();
  for (const [name, number] of NUMBER_BY_NAME) {
    if (number >= SIGRTMIN) continue;
    if (!names.has(number) || ALIASES.has(names.get(number)!)) names.set(number, name);
  }
  return names;
})();

function unknownSignal(raw: string): Error {
  return new Error(`unknown signal ${JSON.stringify(raw)}`);
}

function parseRealtime(name: string): number | undefined {
  const match = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (!match) return undefined;
  const [, base, sign, offsetText] = match;
  const offset = offsetText === undefined ? 0 : Number(offsetText);
  // RTMIN only counts up and RTMAX only counts down, as in kill(1).
  if (base === 'MIN' && sign === '-') return undefined;
  if (base === 'MAX' && sign === '+') return undefined;
  const number = base === 'MIN' ? SIGRTMIN + offset : SIGRTMAX - offset;
  return number >= SIGRTMIN && number <= SIGRTMAX ? number : undefined;
}

/**
 * Parse a signal the way `runc kill` does: a decimal number (1..64) or a name
 * with or without the SIG prefix, in any case, including SIGRTMIN+n / SIGRTMAX-n.
 */
export function parseSignal(raw: string, opts: { allowZero?: boolean } = {}): number {
  if (/^\d+$/.test(raw)) {
    const number = Number(raw);
    if (number >= 1 && number <= SIGRTMAX) return number;
    // Signal 0 checks that the process is there (kill(2)); runc's kill takes it.
    if (number === 0 && opts.allowZero) return 0;
    throw unknownSignal(raw);
  }
  let name = raw.toUpperCase();
  if (!name.startsWith('SIG')) name = 'SIG' + name;
  const number = NUMBER_BY_NAME.get(name) ?? parseRealtime(name);
  if (number === undefined || number < 1 || number > SIGRTMAX) throw unknownSignal(raw);
  return number;
}

/** Canonical name of a signal number, e.g. 15 -> "SIGTERM", 36 -> "SIGRTMIN+2". */
export function signalName(number: number): string {
  if (!Number.isInteger(number) || number < 1 || number > SIGRTMAX) {
    throw new RangeError(`invalid signal number ${number}`);
  }
  const name = NAME_BY_NUMBER.get(number);
  if (name) return name;
  if (number < SIGRTMIN) return `SIG${number}`;
  // Same split as glibc's strsignal and kill -l: the lower half counts from RTMIN.
  const middle = SIGRTMIN + (SIGRTMAX - SIGRTMIN) / 2;
  if (number === SIGRTMIN) return 'SIGRTMIN';
  if (number === SIGRTMAX) return 'SIGRTMAX';
  return number <= middle ? `SIGRTMIN+${number - SIGRTMIN}` : `SIGRTMAX-${SIGRTMAX - number}`;
}
