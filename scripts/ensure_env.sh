#!/usr/bin/env bash
# Create the project's virtual environment on first use and reuse it afterwards.
#
# Both set-up commands (run_all.sh and run_tests.sh) call this. It installs the
# project with the exact versions of constraints.txt (torch pinned to 2.13.0)
# and reinstalls only when constraints.txt, pyproject.toml or the extras changed.
# RECSEC_VENV chooses another location, PYTHON another interpreter (>= 3.10).
# RECSEC_WITH_CLUSTER=1 adds the cluster extra (Ray, for --cluster; CI sets it so the Ray tests run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RECSEC_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.recsec-installed"
extras="notebooks,test"
if [ "${RECSEC_WITH_CLUSTER:-0}" = "1" ]; then
    extras="$extras,cluster"
fi
want="$( (cat "$root/constraints.txt" "$root/pyproject.toml"; echo "$extras") | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
    echo "recsec: creating the virtual environment in $venv" >&2
    "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "recsec: installing pinned packages (constraints.txt) into $venv" >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        -c "$root/constraints.txt" -e "$root[$extras]"
    # A kernel of this environment under its own name, so papermill never runs a
    # notebook in some other Python that happens to be called "python3".
    "$venv/bin/python" -m ipykernel install --sys-prefix --name recsec \
        --display-name "Python 3 (recsec)" >/dev/null
    echo "$want" > "$stamp"
fi
