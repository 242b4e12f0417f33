#!/bin/bash
# Set everything up, then run the demo container from the default bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ./bin/tsrun --root /run/tsrun-demo run --bundle spec-fixtures/busybox "tsrun-demo-$$"
