#!/bin/bash
# The fast check (npm run check): types, lint, format and the unit tests,
# with no root and no container, in under a minute.  CI runs it before the
# root suite (scripts/test.sh).  `npm run format` rewrites what it finds.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '== %s\n' "$1"; }

step 'types (tsc) and build'
# The whole build, not tsc --noEmit: the unit tests run from dist/, and the
# root suite refuses an executable older than tsc's output.  native/ too: a
# handler in init.c that no longer matches the generated plan headers fails
# to compile (make rebuilds only what changed).
npm run --silent build
npx node-gyp build --loglevel=error >/dev/null
step 'lint (eslint)'
npx eslint --max-warnings 0 .
step 'format (prettier, clang-format)'
npx prettier --check --log-level warn $(node scripts/format-files.js ts)
clang-format --dry-run -Werror $(node scripts/format-files.js c)
step 'unit tests (no root)'
npx tap --disable-coverage dist/test/unit
