import { Command, type OptionValues } from './args';
import { parseSubCgroups } from '../lib/cgroup/manager';
import { knownCapabilities } from '../lib/capabilities';
import fs = require('fs');
import { checkProcess, ConfigError, ID_RANGE, MAX_ID, type Process } from '../lib/config';
import { describeFsError, TsrunError } from '../lib/errors';
import { exec } from '../lib/exec';
import { parseCount, storeOf, verb } from './common';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** --process FILE (or "-"), validated like config.json's process. */
function processFromFile(file: string): Process {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new TsrunError(describeFsError(err, `--process ${file}`));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TsrunError(`--process ${file}: invalid JSON: ${(err as Error).message}`);
  }
  try {
    return checkProcess(json, 'process');
  } catch (err) {
    if (err instanceof ConfigError) throw new TsrunError(`--process ${file}: ${err.message}`);
    throw err;
  }
}

/** A uid or gid from a flag, in runc's range (config.ts MAX_ID says why). */
function parseId(text: string, flag: string): number {
  const id = parseCount(text, flag);
  if (id > MAX_ID) throw new TsrunError(`${flag}: ${text} is out of range: ${ID_RANGE}`);
  return id;
}

/** "uid[:gid]" */
function parseUser(value: string): { uid: number; gid?: number } {
  const m = value.match(/^(\d+)(?::(\d+))?$/);
  if (!m) throw new TsrunError(`--user: "${value}" is not uid[:gid] (numbers)`);
  return { uid: parseId(m[1], '--user'), gid: m[2] === undefined ? undefined : parseId(m[2], '--user') };
}

/** The process runc's exec builds from the container's own process and the flags. */
function processFromFlags(base: Process | undefined, args: string[], o: OptionValues): Process {
  if (args.length === 0) throw new TsrunError('a command to run is required (or --process)');
  const p: Process = JSON.parse(JSON.stringify(base ?? { cwd: '/' }));
  p.args = args;
  p.terminal = !!o.tty;
  if (o.cwd) {
    // As runc ("Cwd must be an absolute path"), named as the flag it came from.
    if (!(o.cwd as string).startsWith('/')) throw new TsrunError(`--cwd: "${o.cwd}" is not an absolute path`);
    p.cwd = o.cwd;
  }
  for (const e of o.env as string[]) {
    // runc refuses these too ("invalid environment variable", "name can't be empty").
    if (!e.includes('=')) throw new TsrunError(`--env: "${e}" is not NAME=VALUE`);
    if (e.startsWith('=')) throw new TsrunError(`--env: "${e}" has an empty name`);
  }
  if (o.env.length) {
    const keys = new Set((o.env as string[]).map((e) => e.split('=')[0]));
    p.env = [...(p.env ?? []).filter((e) => !keys.has(e.split('=')[0])), ...o.env];
  }
  if (o.user) {
    const { uid, gid } = parseUser(o.user);
    p.user = { ...(p.user ?? { uid: 0, gid: 0 }), uid, gid: gid ?? p.user?.gid ?? 0 };
  }
  if (o.additionalGids.length) {
    p.user = {
      ...(p.user ?? { uid: 0, gid: 0 }),
      additionalGids: (o.additionalGids as string[]).map((g) => parseId(g, '--additional-gids')),
    };
  }
  if (o.newPrivs === false) p.noNewPrivileges = true; // the parser reads --no-new-privs as a negation
  if (o.cap.length) {
    // exec --cap adds to bounding, effective and permitted; never inheritable (CVE-2022-29162).
    // An unknown name is warned about here, as the flag the user typed.
    const added = knownCapabilities(o.cap as string[], '--cap');
    const caps = p.capabilities ?? {};
    for (const set of ['bounding', 'effective', 'permitted'] as const)
      caps[set] = [...new Set([...(caps[set] ?? []), ...added])];
    p.capabilities = caps;
  }
  if (o.apparmor) p.apparmorProfile = o.apparmor;
  if (o.processLabel) p.selinuxLabel = o.processLabel;
  return p;
}

export function execCommand(): Command {
  return (
    new Command('exec')
      // Flags end at the container id, as with runc: the command keeps its own.
      .passThroughOptions()
      .description('run a new process inside a running container')
      .argument('<id>')
      .argument('[command...]', 'the command and its arguments (or --process)')
      .option('-p, --process <file>', 'a process JSON file (config.json process schema); "-" for stdin')
      .option('-t, --tty', 'allocate a pseudo-TTY')
      .option('--console-socket <path>', 'unix socket that receives the pty master')
      .option('--cwd <dir>', 'working directory in the container')
      .option('-e, --env <KEY=value>', 'set an environment variable (repeatable)', collect, [])
      .option('-u, --user <uid[:gid]>', 'run as this user')
      .option('-g, --additional-gids <gid>', 'an additional group (repeatable)', collect, [])
      .option('-c, --cap <cap>', 'add a capability (repeatable)', collect, [])
      .option('--no-new-privs', 'set no_new_privileges for the process')
      .option('--apparmor <profile>', 'AppArmor profile for the process')
      .option('--process-label <label>', 'SELinux label for the process')
      .option('-d, --detach', 'do not wait for the process')
      .option('--pid-file <path>', 'write the process pid here')
      .option('--preserve-fds <n>', 'pass this many fds after stdio into the process', '0')
      .option(
        '--cgroup <[controller[,controller...]:]path>',
        "run in this existing sub-cgroup of the container's (repeatable; per controller on cgroup v1)",
        collect,
        [],
      )
      .option('--ignore-paused', 'allow exec into a paused container')
      .action(
        verb(
          'exec',
          async function (this: Command, id: string, args: string[]) {
            const o = this.opts();
            const store = storeOf(this);
            const process = o.process ? processFromFile(o.process) : processFromFlags(store.load(id).process, args, o);
            if (o.process && o.tty) process.terminal = true;
            return exec(store, {
              id,
              process,
              consoleSocket: o.consoleSocket,
              pidFile: o.pidFile,
              detach: !!o.detach,
              preserveFds: parseCount(o.preserveFds, '--preserve-fds'),
              ignorePaused: !!o.ignorePaused,
              subCgroup: parseSubCgroups(o.cgroup),
            });
          },
          undefined,
          255,
        ),
      )
  );
}
