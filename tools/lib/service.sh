# Shared by tools/keystone.sh, tools/glance.sh and tools/registry.sh: one loopback
# service per run directory, tracked by its PID file so that a run stops only what it
# started. The caller sets NAME (for log lines) and PIDFILE before sourcing this,
# and ENVFILE (what it writes once up) before calling up_already.

log() { echo "$NAME: $*"; }

# alive PIDFILE: the process PIDFILE names is running.
alive() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

running() { alive "$PIDFILE"; }

# up_already: this run dir's service answers already (it wrote ENVFILE): say so.
up_already() {
    running && [ -f "$ENVFILE" ] || return 1
    log "already running (pid $(cat "$PIDFILE")), $ENVFILE"
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

# serving URL SECONDS LOG...: wait_for URL (2xx); when it does not answer, the LOGs'
# last lines and status 1 (the caller stops what it started).
serving() {
    local url="$1" secs="$2"
    shift 2
    wait_for "$url" "$secs" && return 0
    log "did not answer on $url; last log lines:"
    tail -n 30 "$@" 2>/dev/null || true
    return 1
}

# stop_pidfile PIDFILE [WHAT] [TRIES]: TERM the process PIDFILE names, wait for it to
# end (TRIES x 0.2 s, default 50), forget the file.
stop_pidfile() {
    local file="$1" what="${2:-}" tries="${3:-50}" pid
    if alive "$file"; then
        pid=$(cat "$file")
        log "stopping ${what:+$what }pid $pid"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$file"
}

# stop: the service this run dir started (a script with more processes overrides it).
stop() { stop_pidfile "$PIDFILE"; }

# main "$@": start | stop
main() {
    case "${1:-start}" in
        start) start ;;
        stop) stop ;;
        *) echo "usage: $0 start|stop" >&2; exit 2 ;;
    esac
}
