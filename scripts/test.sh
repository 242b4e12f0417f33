#!/bin/bash
# Set everything up, then run the whole test suite (unit and, as root, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
npx tap dist/test/unit dist/test/integration 2>&1 | tee "$log" || status=$?
# One closing line any CI can read: "N passed, N failed".
summary=$(grep -E '^# \{ total: ' "$log" | tail -1 || true)
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
if [ -z "$total" ] || [ "$total" -eq 0 ]; then
  echo "no tests ran"
  exit 1
fi
echo "${pass:-0} passed, ${fail:-0} failed"
exit $status
