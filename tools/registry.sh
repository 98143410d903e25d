#!/usr/bin/env bash
# A real private Docker registry (Debian's docker-registry, distribution 2.x) on
# loopback, with htpasswd (bcrypt) authentication, for the private-registry tests.
#   bash tools/registry.sh start    # configure and run (the package comes from setup-host.sh)
#   bash tools/registry.sh stop     # stop the registry this run dir started
#
# Everything lives under $ZUND_CI_DIR/registry (config, htpasswd, storage, log); it
# serves plain HTTP on 127.0.0.1:$ZUND_REGISTRY_PORT (default: a free port) — dockerd
# allows insecure registries on loopback without configuration. It writes:
#   $ZUND_CI_DIR/registry.pid           the registry process (tools/run-tests.sh stops it)
#   $ZUND_CI_DIR/registry/registry.env  KEY=VALUE lines the tests read
#                                       (via $ZUND_REGISTRY_ENV)
# Tests push their own images (docker tag + login + push of zund-test/busybox).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ZUND_CI_DIR:?set ZUND_CI_DIR to this run directory}"
RUN="$ZUND_CI_DIR/registry"
PIDFILE="$ZUND_CI_DIR/registry.pid"
NAME=registry.sh
# shellcheck source=tools/lib/service.sh
. tools/lib/service.sh
ENVFILE="$RUN/registry.env"
USER_NAME="${ZUND_REGISTRY_USER:-zund-ci}"

start() {
    if running && [ -f "$ENVFILE" ]; then
        log "already running (pid $(cat "$PIDFILE")), $ENVFILE"
        return
    fi
    stop  # a half-started one from this run dir
    command -v docker-registry >/dev/null || { log "docker-registry is not installed (tools/setup-host.sh)"; return 1; }
    command -v htpasswd >/dev/null || { log "htpasswd is not installed (apache2-utils)"; return 1; }
    local port password
    port="${ZUND_REGISTRY_PORT:-$(free_port)}"
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    rm -rf "$RUN"
    mkdir -p "$RUN/data"
    chmod 700 "$RUN"
    htpasswd -Bbc "$RUN/htpasswd" "$USER_NAME" "$password" 2>/dev/null
    cat > "$RUN/config.yml" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $RUN/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: zund-ci
    path: $RUN/htpasswd
YML
    setsid docker-registry serve "$RUN/config.yml" </dev/null >>"$RUN/registry.log" 2>&1 &
    echo $! > "$PIDFILE"
    if ! wait_for "http://127.0.0.1:$port/v2/" 30 401; then
        log "the registry did not answer on 127.0.0.1:$port; last log lines:"
        tail -n 20 "$RUN/registry.log" || true
        stop
        return 1
    fi
    umask 077
    {
        echo "ZUND_REGISTRY_ADDR=127.0.0.1:$port"
        echo "ZUND_REGISTRY_USER=$USER_NAME"
        echo "ZUND_REGISTRY_PASSWORD=$password"
    } > "$ENVFILE"
    log "running on 127.0.0.1:$port (pid $(cat "$PIDFILE")), $ENVFILE"
}

main "$@"
