#!/usr/bin/env bash
# Run the test suite (set-up command 2 of the README).
#
#   ./run_tests.sh                 # everything; real-data tests use $RECSEC_DATA_MIRROR, else ../shared/data
#   ./run_tests.sh -m "not notebook" tests/unit/test_metrics.py   # any pytest arguments
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/ensure_env.sh"
cd "$root"
# The local MovieLens copy beside the checkout (../shared/data), when RECSEC_DATA_MIRROR does not name one:
# the tests marked realdata run on it. Without either they are skipped, and pytest's last lines say so.
if [ -z "${RECSEC_DATA_MIRROR:-}" ] && [ -d ../shared/data ]; then
    RECSEC_DATA_MIRROR="$(cd ../shared/data && pwd)"
    export RECSEC_DATA_MIRROR
fi
# Tiny tensors: idle OpenMP threads should sleep, not spin (spinning slows a busy 2-core machine a lot).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "${RECSEC_VENV:-$root/.venv}/bin/python" -m pytest "$@"
