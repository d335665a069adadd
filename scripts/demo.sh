#!/usr/bin/env bash
# `make demo`: migrate the SQLite database, seed demo data, then run the web server, the task
# cluster and the sandbox emulators until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WEB_PORT=${WEB_PORT:-8000}
SANDBOX_PORT=${COHORTSYNC_SANDBOX_PORT:-8765}

if [ ! -f .env ]; then
  cat > .env <<ENV
# Written by \`make demo\`: a DEVELOPMENT instance (insecure built-in keys). Do not deploy this.
DEBUG=true
COHORTSYNC_ALLOWED_API_HOSTS=127.0.0.1:${SANDBOX_PORT}
ENV
  echo "Wrote .env for a local development instance."
fi

"$PY" manage.py migrate --no-input
"$PY" manage.py seed_demo --sandbox-url "http://127.0.0.1:${SANDBOX_PORT}"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$PY" manage.py run_sandbox --port "$SANDBOX_PORT" & pids+=($!)
"$PY" manage.py qcluster & pids+=($!)
"$PY" manage.py runserver "127.0.0.1:${WEB_PORT}" --noreload & pids+=($!)

echo
echo "CohortSync is running: http://127.0.0.1:${WEB_PORT}/admin/  (Ctrl-C stops everything)"
wait -n "${pids[@]}"
