/**
 * Issue 17: what a newcomer installs and reads, made from the command
 * definitions (src/cli/docs.ts): scripts/install.sh puts tsrun, its man
 * pages and its completions under a prefix; bash completes verbs, flags,
 * image subcommands, paths and container ids; `man -l` renders every page.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import {
  cleanupContainer,
  IS_ROOT,
  makeBundle,
  PROJECT_ROOT,
  runCommand,
  tempDir,
  TSRUN,
  tsrun,
  uniqueId,
} from '../helpers';

if (!IS_ROOT) {
  t.plan(0, 'needs root');
  process.exit(0);
}

/** What bash completion offers for the words typed (the last one being completed). */
function complete(script: string, words: string[], env: Record<string, string> = {}): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source '${script}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _tsrun; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    {
      encoding: 'utf8',
      env: { PATH: `${path.dirname(TSRUN)}:${process.env.PATH}`, ...env },
    },
  );
  if (r.status !== 0) throw new Error(`bash: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).sort();
}

t.test(
  'scripts/install.sh: the executable, man pages and completions under a prefix, and gone with --uninstall',
  async (t) => {
    const prefix = tempDir(t, 'tsrun-install-');
    const r = runCommand(['bash', path.join(PROJECT_ROOT, 'scripts', 'install.sh'), prefix]);
    t.equal(r.status, 0, r.stderr);
    const bin = path.join(prefix, 'bin', 'tsrun');
    t.equal(
      fs.realpathSync(bin),
      fs.realpathSync(path.join(PROJECT_ROOT, 'dist', 'tsrun')),
      'bin/tsrun is the built executable',
    );
    t.match(runCommand([bin, '--version']).stdout, /^tsrun version /);
    const man = path.join(prefix, 'share', 'man', 'man1');
    const verbs = [
      'create',
      'start',
      'run',
      'state',
      'kill',
      'delete',
      'exec',
      'list',
      'ps',
      'pause',
      'resume',
      'update',
      'events',
      'spec',
      'features',
      'checkpoint',
      'restore',
      'image',
      'bundle',
      'completion',
    ];
    for (const page of ['tsrun.1', ...verbs.map((v) => `tsrun-${v}.1`), 'tsrun-image-import.1'])
      t.ok(fs.existsSync(path.join(man, page)), `man page ${page}`);
    const rendered = spawnSync('man', ['-l', path.join(man, 'tsrun.1')], {
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' },
    });
    t.equal(rendered.status, 0, rendered.stderr);
    t.match(rendered.stdout, /EXIT STATUS[\s\S]*TSRUN_STORE/, 'tsrun(1) says the exit statuses and the environment');
    const runPage = spawnSync('man', ['-l', path.join(man, 'tsrun-run.1')], {
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '100', MANPAGER: 'cat', PAGER: 'cat' },
    });
    t.match(runPage.stdout, /-b, --bundle <path>[\s\S]*--image <ref>/, 'tsrun-run(1) lists its flags');
    for (const f of [
      'share/bash-completion/completions/tsrun',
      'share/zsh/site-functions/_tsrun',
      'share/fish/vendor_completions.d/tsrun.fish',
    ])
      t.ok(fs.statSync(path.join(prefix, f)).size > 0, f);
    t.equal(runCommand(['bash', path.join(PROJECT_ROOT, 'scripts', 'install.sh'), '--uninstall', prefix]).status, 0);
    const left = spawnSync('find', [prefix, '-type', 'f', '-o', '-type', 'l'], { encoding: 'utf8' }).stdout;
    t.equal(left, '', 'nothing of it left');
  },
);

t.test('scripts/install.sh refuses a checkout another user could change (root would run it)', async (t) => {
  const fake = tempDir(t, 'tsrun-install-fake-');
  fs.chmodSync(fake, 0o755);
  fs.mkdirSync(path.join(fake, 'scripts'));
  fs.copyFileSync(path.join(PROJECT_ROOT, 'scripts', 'install.sh'), path.join(fake, 'scripts', 'install.sh'));
  fs.mkdirSync(path.join(fake, 'dist'));
  fs.writeFileSync(path.join(fake, 'dist', 'tsrun'), '#!/bin/sh\n', { mode: 0o755 });
  fs.chownSync(path.join(fake, 'dist', 'tsrun'), 65534, 65534);
  const prefix = tempDir(t, 'tsrun-install-prefix-');
  const r = runCommand(['bash', path.join(fake, 'scripts', 'install.sh'), prefix]);
  t.equal(r.status, 1);
  t.match(r.stderr, /dist\/tsrun belongs to uid 65534, and root would run what is under it/);
  t.notOk(fs.existsSync(path.join(prefix, 'bin', 'tsrun')), 'nothing installed');
  fs.chownSync(path.join(fake, 'dist', 'tsrun'), 0, 0);
  fs.chmodSync(path.join(fake, 'dist'), 0o777);
  t.match(
    runCommand(['bash', path.join(fake, 'scripts', 'install.sh'), prefix]).stderr,
    /dist is writable by others \(mode 777\)/,
  );
});

t.test('bash completion: verbs, flags, image subcommands, paths, container ids', async (t) => {
  const dir = tempDir(t, 'tsrun-completion-');
  const script = path.join(dir, 'tsrun.bash');
  fs.writeFileSync(script, runCommand([TSRUN, 'completion', 'bash']).stdout);
  t.same(complete(script, ['tsrun', 'del']), ['delete']);
  t.same(complete(script, ['tsrun', 'st']), ['start', 'state']);
  t.same(complete(script, ['tsrun', 'delete', '--f']), ['--force']);
  t.same(complete(script, ['tsrun', '--root', '/x', 'image', 'im']), ['import'], 'after a global flag and its value');
  t.same(complete(script, ['tsrun', 'image', 'import', '--t']), ['--tag']);
  fs.writeFileSync(path.join(dir, 'bundle-here'), '');
  t.same(
    complete(script, ['tsrun', 'run', '--bundle', path.join(dir, 'bundle-')]),
    [path.join(dir, 'bundle-here')],
    'a path flag completes paths',
  );
  const bundle = makeBundle(t, () => {}, ['/bin/sleep', '1000']);
  const id = uniqueId('compl');
  cleanupContainer(t, bundle.root, id);
  t.equal(tsrun(bundle.root, ['run', '-d', '-b', bundle.dir, id]).status, 0);
  t.same(
    complete(script, ['tsrun', '--root', bundle.root, 'kill', id.slice(0, 6)]),
    [id],
    'a container id, from tsrun list -q under that --root',
  );
  t.same(
    complete(script, ['tsrun', '--root', bundle.root, 'kill', id, '']).filter((w) => w === id),
    [],
    'not again after the id',
  );
  t.equal(tsrun(bundle.root, ['delete', '--force', id]).status, 0);
  // zsh (through bashcompinit) and fish, run for real.
  fs.writeFileSync(path.join(dir, 'tsrun.zsh'), runCommand([TSRUN, 'completion', 'zsh']).stdout);
  fs.writeFileSync(path.join(dir, 'tsrun.fish'), runCommand([TSRUN, 'completion', 'fish']).stdout);
  t.equal(spawnSync('zsh', ['-n', path.join(dir, 'tsrun.zsh')]).status, 0, 'zsh reads its script');
  const zsh = spawnSync(
    'zsh',
    ['-c', `autoload -U compinit; compinit -u; source '${path.join(dir, 'tsrun.zsh')}'; whence -w _tsrun`],
    { encoding: 'utf8' },
  );
  t.match(zsh.stdout, /_tsrun: function/, `zsh loads it: ${zsh.stderr}`);
  const fish = (line: string): string[] =>
    spawnSync('fish', ['-c', `source '${path.join(dir, 'tsrun.fish')}'; complete -C '${line}'`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[0])
      .sort();
  t.same(fish('tsrun del'), ['delete'], 'fish: a verb');
  t.same(fish('tsrun delete --f'), ['--force'], 'fish: a flag of the verb');
  t.match(runCommand([TSRUN, 'completion', 'tcsh']).stderr, /^tsrun: completion: "tcsh": bash, zsh or fish\n$/);
});
