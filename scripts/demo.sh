#!/usr/bin/env bash
# `make demo`: a local development instance on the embedded defaults. Creates the virtualenv if
# needed, writes a development .env if there is none, migrates the SQLite database, seeds demo
# data, then runs the sandbox emulators, the django-q2 cluster and the web server until Ctrl-C.
# Needs only python3 (3.11+); `make` is optional (scripts/demo.sh works on its own).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PY:-$VENV/bin/python}
PYTHON=${PYTHON:-python3}
WEB_HOST=127.0.0.1
WEB_PORT=${WEB_PORT:-8000}
SANDBOX_PORT=${COHORTSYNC_SANDBOX_PORT:-8765}
PROFILES=${DEMO_PROFILES:-3000}
WEB_URL="http://${WEB_HOST}:${WEB_PORT}"
SANDBOX_URL="http://127.0.0.1:${SANDBOX_PORT}"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$PY" ]; then
  command -v "$PYTHON" >/dev/null || die "python3 is needed (3.11 or newer)."
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); CohortSync needs Python 3.11 or newer (set PYTHON=...)."
  say "Creating the virtualenv in $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create a virtualenv (on Debian/Ubuntu: apt install python3-venv)."
  "$VENV/bin/pip" install --quiet -e ".[test]"
  touch "$VENV/.installed"
fi

# A port already taken would make one process die at once and take the others down with it.
port_free() {
  "$PY" - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
PY
}
port_free "$WEB_PORT" || die "port $WEB_PORT is in use (another demo?). Stop it or run WEB_PORT=8001 make demo."
port_free "$SANDBOX_PORT" || die "port $SANDBOX_PORT is in use. Stop it or run COHORTSYNC_SANDBOX_PORT=8766 make demo."

if [ ! -f .env ]; then
  cat > .env <<ENV
# Written by \`make demo\`: a DEVELOPMENT instance (DEBUG with insecure built-in keys).
# Never deploy with this file; see README.md, "Configuration".
DEBUG=true
COHORTSYNC_ALLOWED_API_HOSTS=127.0.0.1:${SANDBOX_PORT}
# Links in alerts (the demo's email alerts are printed by the console backend).
COHORTSYNC_BASE_URL=${WEB_URL}
ENV
  say "Wrote .env for a local development instance"
fi

say "Migrating the database"
"$PY" manage.py migrate --no-input

say "Seeding demo data"
seed_output=$("$PY" manage.py seed_demo --sandbox-url "$SANDBOX_URL" --profiles "$PROFILES" \
  --web-url "$WEB_URL")
printf '%s\n' "$seed_output"
# Re-create every sync's schedule (the engine's command; older checkouts may not have it).
if "$PY" manage.py help setup_schedules >/dev/null 2>&1; then
  "$PY" manage.py setup_schedules
fi

pids=()
cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    printf '\nStopping the demo...\n'
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting the sandbox emulators, the task cluster and the web server"
"$PY" manage.py run_sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" & pids+=($!)
"$PY" manage.py qcluster & pids+=($!)
"$PY" manage.py runserver "${WEB_HOST}:${WEB_PORT}" --noreload & pids+=($!)

# Announce the URL only once the admin answers, so it is never a dead link.
"$PY" - "$WEB_URL/admin/login/" <<'PY' || die "the web server did not answer on $WEB_URL (see the log above)."
import sys, time, urllib.request
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PY

printf '\nCohortSync is running: %s/admin/   (Ctrl-C stops everything)\n' "$WEB_URL"
printf '%s\n' "$seed_output" | grep -E '^  (user|password):' || true
printf 'Sandbox emulators: %s  (state: %s/sfmc/_sandbox/state, %s/marketo/_sandbox/state)\n' \
  "$SANDBOX_URL" "$SANDBOX_URL" "$SANDBOX_URL"
# The first process to stop (crash or Ctrl-C) ends the demo; the trap stops the rest.
wait -n "${pids[@]}"
