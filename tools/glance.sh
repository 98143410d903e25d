#!/usr/bin/env bash
# A real Glance (33.x) on loopback for the Glance image driver's tests.
#   bash tools/glance.sh start    # install (once), configure, run
#   bash tools/glance.sh stop     # stop the Glance this run dir started
#
# Glance lives in its OWN virtualenv ($ZUND_GLANCE_VENV, default /opt/zund-glance,
# reused when present) so its pins never touch zund's environment. It runs WITHOUT
# authentication (paste flavor empty: Glance's unauthenticated-context pipeline,
# every caller is admin), with SQLite and the file store under
# $ZUND_CI_DIR/glance, serving glance.wsgi.api:application with gunicorn on
# 127.0.0.1:$ZUND_GLANCE_PORT (default: a free port). It writes:
#   $ZUND_CI_DIR/glance.pid            gunicorn's master (tools/run-tests.sh stops it)
#   $ZUND_CI_DIR/glance/glance.env     KEY=VALUE lines the tests read
#                                      (tests/real/e2e/glance.py, via $ZUND_GLANCE_ENV)
# Tests push their own images (docker save of zund-test/busybox:latest).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ZUND_CI_DIR:?set ZUND_CI_DIR to this run directory}"
VENV="${ZUND_GLANCE_VENV:-/opt/zund-glance}"
GLANCE_VERSION="${ZUND_GLANCE_VERSION:-33.0.0}"
RUN="$ZUND_CI_DIR/glance"
PIDFILE="$ZUND_CI_DIR/glance.pid"
NAME=glance.sh
# shellcheck source=tools/lib/service.sh
. tools/lib/service.sh
ENVFILE="$RUN/glance.env"

configure() {
    mkdir -p "$RUN/images" "$RUN/staging" "$RUN/tasks"
    local paste
    paste=$(ls "$VENV"/etc/glance/glance-api-paste.ini)
    cp "$paste" "$RUN/glance-api-paste.ini"
    cat > "$RUN/glance-api.conf" <<EOF
[DEFAULT]
log_file = $RUN/glance-api.log
bind_host = 127.0.0.1
bind_port = $PORT
enabled_backends = fs:file
worker_self_reference_url = $URL
[database]
connection = sqlite:///$RUN/glance.sqlite
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $RUN/images
[os_glance_staging_store]
filesystem_store_datadir = $RUN/staging
[os_glance_tasks_store]
filesystem_store_datadir = $RUN/tasks
[paste_deploy]
config_file = $RUN/glance-api-paste.ini
[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
EOF
    "$VENV/bin/glance-manage" --config-file "$RUN/glance-api.conf" db_sync >"$RUN/db_sync.log" 2>&1
}

start() {
    if running && [ -f "$ENVFILE" ]; then
        log "already running (pid $(cat "$PIDFILE")), $ENVFILE"
        return
    fi
    stop  # a half-started one from this run dir
    local t0=$SECONDS
    install_venv "$VENV" glance "$GLANCE_VERSION" glance-manage
    local t1=$SECONDS
    PORT="${ZUND_GLANCE_PORT:-$(free_port)}"
    URL="http://127.0.0.1:$PORT"
    rm -rf "$RUN"
    mkdir -p "$RUN"
    configure
    OS_GLANCE_CONFIG_DIR="$RUN" setsid "$VENV/bin/gunicorn" --chdir "$RUN" \
        --bind "127.0.0.1:$PORT" --workers 1 --threads 4 --timeout 300 \
        --error-logfile "$RUN/gunicorn.log" glance.wsgi.api:application \
        </dev/null >>"$RUN/gunicorn.log" 2>&1 &
    echo $! > "$PIDFILE"
    if ! wait_for "$URL/versions" 90; then
        log "glance did not answer on $URL; last log lines:"
        tail -n 30 "$RUN/gunicorn.log" "$RUN/glance-api.log" 2>/dev/null || true
        stop
        return 1
    fi
    echo "ZUND_GLANCE_URL=$URL" > "$ENVFILE"
    log "running on $URL (pid $(cat "$PIDFILE")); install $((t1 - t0))s, setup $((SECONDS - t1))s"
}

main "$@"
