#!/usr/bin/env bash
# Start a Ray head on this machine for `ray job submit`, on loopback unless RLKD_RAY_HOST is set.
#
# Usage: cluster/start-local-head.sh [EXTRA RAY START ARGS...]
#   cluster/start-local-head.sh --block   # stay in the foreground, Ctrl-C stops Ray
# Stop it with cluster/stop-local-head.sh.
#
# Environment:
#   RLKD_RAY_HOST        address that the dashboard and job server bind to, also passed as the
#                        node IP (default 127.0.0.1). Any other value, such as a LAN address,
#                        exposes the dashboard beyond this machine, which is the caller's choice.
#                        Token authentication stays on either way.
#   RLKD_RAY_PORT        GCS port (default 6379)
#   RLKD_DASHBOARD_PORT  dashboard and job submission port (default 8265)
#   RLKD_METRICS_PORT    Prometheus metrics export port (default 8080)
#   RLKD_AGENT_PORT      dashboard agent port, which job submission goes through (default 52365)
#   RLKD_CLIENT_PORT     Ray client server port (default 10001)
#   RLKD_NUM_CPUS        CPUs that Ray may schedule (default: every CPU Ray detects)
#   RLKD_RAY_BIN         ray executable to run (default: .venv/bin/ray of this repository, else ray on PATH)
#
# NOTE: only the dashboard and job server stay on 127.0.0.1. Ray 2.60 replaces a loopback node
# IP with the machine's address, and then the GCS, raylet, metrics exporter and client server
# listen on that address or on all interfaces (seen with `ss -ltnp`). Token authentication covers
# GCS and job calls; on shared networks keep a firewall in front of Ray's ports as well.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_bin="$repo_root/.venv/bin"

host="${RLKD_RAY_HOST:-127.0.0.1}"
gcs_port="${RLKD_RAY_PORT:-6379}"
dashboard_port="${RLKD_DASHBOARD_PORT:-8265}"
metrics_port="${RLKD_METRICS_PORT:-8080}"
agent_port="${RLKD_AGENT_PORT:-52365}"
client_port="${RLKD_CLIENT_PORT:-10001}"
num_cpus="${RLKD_NUM_CPUS:-}"

fail() {
    echo "start-local-head.sh: $*" >&2
    exit 2
}

validate_port() {
    local name="$1" value="$2"
    if ! [[ "$value" =~ ^[0-9]+$ ]] || (( value < 1 || value > 65535 )); then
        fail "invalid $name '$value': expected a port number from 1 to 65535"
    fi
}

if [[ -z "$host" ]]; then
    fail "RLKD_RAY_HOST is empty: unset it for 127.0.0.1 or set an IP address"
fi
validate_port RLKD_RAY_PORT "$gcs_port"
validate_port RLKD_DASHBOARD_PORT "$dashboard_port"
validate_port RLKD_METRICS_PORT "$metrics_port"
validate_port RLKD_AGENT_PORT "$agent_port"
validate_port RLKD_CLIENT_PORT "$client_port"
if [[ -n "$num_cpus" ]] && ! [[ "$num_cpus" =~ ^[0-9]+$ ]]; then
    fail "invalid RLKD_NUM_CPUS '$num_cpus': expected a whole number of CPUs"
fi

if [[ -n "${RLKD_RAY_BIN:-}" ]]; then
    ray_bin="$RLKD_RAY_BIN"
elif [[ -x "$venv_bin/ray" ]]; then
    ray_bin="$venv_bin/ray"
elif ray_bin="$(command -v ray)"; then
    :
else
    fail "ray not found: run 'make setup' to create .venv, or set RLKD_RAY_BIN"
fi

# Job entrypoints inherit the environment of `ray start`, so `python` in an entrypoint is the venv's.
if [[ -d "$venv_bin" ]]; then
    export PATH="$venv_bin:$PATH"
fi

# Ray 2.60's `ray start` turns token authentication on only when RAY_AUTH_MODE=token or a
# token already exists, and never creates the token itself. Create it first, so that
# authentication is on whatever state ~/.ray is in.
if [[ -n "${RAY_AUTH_MODE:-}" && "${RAY_AUTH_MODE}" != "token" ]]; then
    fail "RAY_AUTH_MODE=$RAY_AUTH_MODE is not supported: this script always starts Ray with token authentication (unset RAY_AUTH_MODE)"
fi
export RAY_AUTH_MODE=token
token_file="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"

# Ray creates the token file with plain open(), so under the usual umask 022 every user can read it.
protect_token_file() {
    if [[ -f "$token_file" ]]; then
        chmod 600 "$token_file"
    fi
}

"$ray_bin" get-auth-token --generate >/dev/null
protect_token_file

blocking=false
for arg in "$@"; do
    if [[ "$arg" == "--block" ]]; then
        blocking=true
    fi
done

# 0.0.0.0 is a bind address, not one to connect to, so clients get 127.0.0.1 in its place.
if [[ "$host" == "0.0.0.0" ]]; then
    client_host=127.0.0.1
else
    client_host="$host"
fi
dashboard_url="http://$client_host:$dashboard_port"

print_usage() {
    local status="$1"
    cat <<EOF

Ray head $status (GCS $host:$gcs_port, metrics on port $metrics_port).
Dashboard: $dashboard_url (token authentication is on; '$ray_bin get-auth-token' prints the token)
Submit a job from the repository root with:
  RAY_AUTH_MODE=token ray job submit --address $dashboard_url --runtime-env jobs/runtime_env.yaml -- python jobs/compare.py --help
Stop Ray with: cluster/stop-local-head.sh
EOF
}

ray_args=(
    start --head
    --node-ip-address "$host"
    --port "$gcs_port"
    --dashboard-host "$host"
    --dashboard-port "$dashboard_port"
    --metrics-export-port "$metrics_port"
    --dashboard-agent-listen-port "$agent_port"
    --ray-client-server-port "$client_port"
    --disable-usage-stats
)
if [[ -n "$num_cpus" ]]; then
    ray_args+=(--num-cpus "$num_cpus")
fi

# `ray start --block` returns only when Ray stops, so print the usage before it.
if [[ "$blocking" == true ]]; then
    print_usage starting
    exec "$ray_bin" "${ray_args[@]}" "$@"
fi

"$ray_bin" "${ray_args[@]}" "$@"
protect_token_file
print_usage started
