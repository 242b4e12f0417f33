/**
 * What is written from the command definitions themselves, so it cannot
 * drift from them: shell completion (`tsrun completion bash|zsh|fish`)
 * and the man pages (`tsrun-man DIR`, run by scripts/install.sh): tsrun(1)
 * and one tsrun-VERB(1) per verb.
 */
import type { CommandInfo } from './args';

/** Flags whose value is a host path: completed with file names (not --cwd, a path in the container). */
const PATH_FLAGS = new Set(['root', 'log', 'bundle', 'pid-file', 'console-socket', 'process', 'resources', 'store']);

/** Verbs whose first argument is a container id: completed from `tsrun list -q`. */
const TAKES_ID = (c: CommandInfo): boolean => c.arguments[0]?.name === 'id';

const flagWords = (c: CommandInfo): string[] =>
  c.options.flatMap((o) => [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])]);
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Every command below the root, with its path of names: [["state"], ["image", "import"], ...]. */
function walk(c: CommandInfo, above: string[] = []): Array<{ path: string[]; command: CommandInfo }> {
  return c.commands.flatMap((sub) => [
    { path: [...above, sub.name], command: sub },
    ...walk(sub, [...above, sub.name]),
  ]);
}

export function bashCompletion(root: CommandInfo): string {
  const valueFlags = (c: CommandInfo): string[] =>
    c.options.filter((o) => o.takesValue).flatMap((o) => [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])]);
  const entry = (path: string, command: CommandInfo): string => {
    const words = [...command.commands.map((s) => s.name), ...flagWords(command)];
    return `    ${quote(path)}) words=${quote(words.join(' '))}; values=${quote(valueFlags(command).join(' '))}; ids=${TAKES_ID(command) ? 1 : 0};;`;
  };
  const cases = [entry('', root), ...walk(root).map(({ path, command }) => entry(path.join(' '), command))];
  return `# bash completion for tsrun, written by \`tsrun completion bash\` from its command definitions.
# Load it with: source <(tsrun completion bash), or install it as
# /usr/share/bash-completion/completions/tsrun (scripts/install.sh does).

# The words, the flags that take a value, and whether a container id comes, for a verb path ("", "state", "image import").
_tsrun_for() {
  case "$1" in
${cases.join('\n')}
    *) words=""; values=""; ids=0;;
  esac
}

_tsrun() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local path="" root="" i=1 npos=0 word words values ids
  _tsrun_for ""
  # The verb (and image's subcommand) typed so far, skipping flags and their values.
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word=\${COMP_WORDS[i]}
    case " $values " in
      *" $word "*) [ "$word" = --root ] && root=\${COMP_WORDS[i+1]}; i=$((i + 2)); continue;;
    esac
    case "$word" in
      -*) ;;
      *) if [ -z "$path" ]; then path=$word; _tsrun_for "$path"; elif [ "$path" = image ]; then path="image $word"; _tsrun_for "$path"; else npos=$((npos + 1)); fi;;
    esac
    i=$((i + 1))
  done
  case " $values " in
    *" $prev "*)
      case "$prev" in
        ${[...PATH_FLAGS].map((f) => `--${f}`).join('|')}|-b|-p|-r) COMPREPLY=($(compgen -f -- "$cur"));;
        *) COMPREPLY=();;
      esac
      return;;
  esac
  if [ "$ids" = 1 ] && [ "$npos" = 0 ] && [[ $cur != -* ]]; then
    # Compared as plain strings: compgen -W would expand $(...) in an id.
    local id
    COMPREPLY=()
    while IFS= read -r id; do
      [[ $id == "$cur"* ]] && COMPREPLY+=("$id")
    done < <(tsrun \${root:+--root "$root"} list -q 2>/dev/null)
    return
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _tsrun tsrun
`;
}

export function zshCompletion(root: CommandInfo): string {
  return `#compdef tsrun
# zsh completion for tsrun, written by \`tsrun completion zsh\`: the bash one, through zsh's bashcompinit.
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(root)
  .split('\n')
  .filter((l) => !l.startsWith('#'))
  .join('\n')}`;
}

export function fishCompletion(root: CommandInfo): string {
  const lines = [
    '# fish completion for tsrun, written by `tsrun completion fish` from its command definitions.',
    'complete -c tsrun -f',
  ];
  const flag = (cond: string, o: CommandInfo['options'][number]): string =>
    `complete -c tsrun${cond} -l ${o.long}${o.short ? ` -s ${o.short}` : ''}${o.takesValue ? ` -r${PATH_FLAGS.has(o.long) ? ' -F' : ''}` : ''} -d ${quote(o.description)}`;
  for (const o of root.options) lines.push(flag(' -n __fish_use_subcommand', o));
  for (const verb of root.commands) {
    lines.push(`complete -c tsrun -n __fish_use_subcommand -a ${verb.name} -d ${quote(verb.summary)}`);
    const seen = ` -n ${quote(`__fish_seen_subcommand_from ${verb.name}`)}`;
    for (const o of verb.options) lines.push(flag(seen, o));
    if (TAKES_ID(verb)) lines.push(`complete -c tsrun${seen} -a '(tsrun list -q 2>/dev/null)'`);
    for (const sub of verb.commands) {
      lines.push(`complete -c tsrun${seen} -a ${sub.name} -d ${quote(sub.summary)}`);
      for (const o of sub.options) lines.push(flag(` -n ${quote(`__fish_seen_subcommand_from ${sub.name}`)}`, o));
    }
  }
  return `${lines.join('\n')}\n`;
}

/** roff text: backslashes and leading dots or quotes escaped. */
const roff = (s: string): string =>
  s
    .replace(/\\/g, '\\e')
    .replace(/^([.'])/gm, '\\&$1')
    .replace(/-/g, '\\-');

function manPage(title: string, c: CommandInfo, see: string[], version: string): string {
  const out = [
    `.TH ${title.toUpperCase()} 1 "" "tsrun ${version}" "tsrun manual"`,
    '.SH NAME',
    `${roff(title)} \\- ${roff(c.summary || 'a runc-compatible OCI container runtime')}`,
    '.SH SYNOPSIS',
    `.B ${roff(c.usage)}`,
  ];
  if (c.arguments.some((a) => a.description)) {
    out.push('.SH ARGUMENTS');
    for (const a of c.arguments)
      out.push('.TP', `.I ${roff(a.name)}`, roff(a.description || (a.name === 'id' ? 'the container id' : '')));
  }
  if (c.options.length) {
    out.push('.SH OPTIONS');
    for (const o of c.options) {
      const dflt =
        o.takesValue && o.defaultValue !== undefined && !(Array.isArray(o.defaultValue) && !o.defaultValue.length)
          ? ` (default: ${JSON.stringify(o.defaultValue)})`
          : '';
      out.push('.TP', `.B ${roff(o.flags)}`, roff(o.description + dflt));
    }
    out.push(
      '.PP',
      'A long flag may also be given with one dash (\\fB\\-root\\fR \\fIDIR\\fR), and a value after \\fB=\\fR, as runc reads flags; a boolean flag takes \\fB=true\\fR or \\fB=false\\fR.',
    );
  }
  if (c.commands.length) {
    out.push('.SH COMMANDS');
    for (const sub of c.commands)
      out.push('.TP', `.B ${roff([sub.name, ...sub.aliases].join(', '))}`, roff(sub.summary));
  }
  if (title === 'tsrun') {
    out.push(
      '.SH EXIT STATUS',
      '0 on success; 1 when tsrun fails, a usage error included (one line on stderr names the verb and why).',
      "\\fBrun\\fR exits with the container's status (128+N when a signal N ended it); \\fBexec\\fR with the process's, and 255 when tsrun itself fails, as runc.",
      '.SH ENVIRONMENT',
      '.TP',
      '.B TSRUN_STORE',
      'the image store when no \\fB\\-\\-store\\fR is given (default /var/lib/tsrun; for a user other than root, $XDG_DATA_HOME/tsrun, else ~/.local/share/tsrun).',
    );
  }
  out.push('.SH SEE ALSO', see.map((s) => `.BR ${s} (1)`).join(',\n'));
  return `${out.join('\n')}\n`;
}

/** tsrun.1 and tsrun-VERB.1 (tsrun-image-import.1 for image's subcommands), by file name. */
export function manPages(root: CommandInfo, version: string): Record<string, string> {
  const pages: Record<string, string> = {};
  const all = walk(root);
  pages['tsrun.1'] = manPage('tsrun', root, ['runc', ...root.commands.map((c) => `tsrun-${c.name}`)], version);
  for (const { path, command } of all)
    pages[`tsrun-${path.join('-')}.1`] = manPage(`tsrun-${path.join('-')}`, command, ['tsrun'], version);
  return pages;
}
