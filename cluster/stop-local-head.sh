#!/usr/bin/env bash
# Stop the Ray head that cluster/start-local-head.sh started.
#
# `ray stop` stops every Ray process of this user on this machine, including a local Ray that
# `rlkd compare` or a test started. Extra arguments go to `ray stop` (for example --force).
# RLKD_RAY_BIN selects the ray executable, as in start-local-head.sh.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_bin="$repo_root/.venv/bin"

if [[ -n "${RLKD_RAY_BIN:-}" ]]; then
    ray_bin="$RLKD_RAY_BIN"
elif [[ -x "$venv_bin/ray" ]]; then
    ray_bin="$venv_bin/ray"
elif ray_bin="$(command -v ray)"; then
    :
else
    echo "stop-local-head.sh: ray not found: run 'make setup' to create .venv, or set RLKD_RAY_BIN" >&2
    exit 2
fi

exec "$ray_bin" stop "$@"
