#!/usr/bin/env bash
# Run the whole study (set-up command 1 of the README).
#
#   ./run_all.sh                          # ML-1M, cpu profile, every stage
#   ./run_all.sh --profile smoke          # tiny synthetic data (minutes; README: measured times)
#   ./run_all.sh --profile full --device cuda
#   ./run_all.sh --stage train -p epochs 5
#   ./run_all.sh --resume <run-id>        # continue an interrupted run
#   ./run_all.sh --help                   # every option
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/ensure_env.sh"
cd "$root"
exec "${RECSEC_VENV:-$root/.venv}/bin/python" -m recsec_lib.study.runner "$@"
