// The files `npm run check` and `npm run format` cover, one list for both:
// `ts` (Prettier: TypeScript and the scripts) or `c` (clang-format: native/).
const { execFileSync } = require('child_process');

const patterns = {
  ts: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/*.js', '*.js'],
  c: ['native/*.c', 'native/*.h'],
};
const which = process.argv[2];
if (!patterns[which]) {
  console.error('usage: format-files.js ts|c');
  process.exit(2);
}
// Tracked and new files alike, never what the build wrote.
const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', ...patterns[which]], {
  cwd: `${__dirname}/..`,
  encoding: 'utf8',
});
process.stdout.write(out);
