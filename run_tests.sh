#!/usr/bin/env bash
# Run the test suite (set-up command 2 of the README).
#
#   ./run_tests.sh                 # everything (real-data tests need RECSEC_DATA_MIRROR)
#   ./run_tests.sh -m "not notebook" tests/test_metrics.py   # any pytest arguments
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/ensure_env.sh"
cd "$root"
# Tiny tensors: idle OpenMP threads should sleep, not spin (spinning slows a busy 2-core machine a lot).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "${RECSEC_VENV:-$root/.venv}/bin/python" -m pytest "$@"
