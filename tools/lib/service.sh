# Shared by tools/keystone.sh, tools/glance.sh and tools/registry.sh: one loopback
# service per run directory, tracked by its PID file so that a run stops only what it
# started. The caller sets NAME (for log lines) and PIDFILE before sourcing this.

log() { echo "$NAME: $*"; }

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# install_venv VENV PACKAGE VERSION COMMAND: PACKAGE==VERSION and gunicorn in their own
# virtualenv (their pins must not disturb zund's environment); reused when present.
install_venv() {
    local venv="$1" package="$2" version="$3" command="$4" have=""
    if [ -x "$venv/bin/$command" ] && [ -x "$venv/bin/gunicorn" ]; then
        have=$("$venv/bin/python" -m pip show "$package" 2>/dev/null | sed -n 's/^Version: //p')
    fi
    if [ "$have" = "$version" ]; then return; fi
    log "installing $package $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q "$package==$version" "gunicorn>=21"
}

# wait_for URL SECONDS [OK_STATUS]: until URL answers (2xx, or OK_STATUS such as the
# registry's 401), the deadline passes, or the service died.
wait_for() {
    local deadline=$((SECONDS + $2))
    until python3 - "$1" "${3:-}" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as e:
    sys.exit(0 if sys.argv[2] and e.code == int(sys.argv[2]) else 1)
PY
    do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        if ! running; then return 1; fi
        sleep 0.3
    done
}

stop() {
    running || { rm -f "$PIDFILE"; return 0; }
    local pid
    pid=$(cat "$PIDFILE")
    log "stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    rm -f "$PIDFILE"
}

# main "$@": start | stop
main() {
    case "${1:-start}" in
        start) start ;;
        stop) stop ;;
        *) echo "usage: $0 start|stop" >&2; exit 2 ;;
    esac
}
