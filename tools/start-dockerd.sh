#!/bin/sh
# Start a local Docker engine for the real-runtime test tier, idempotently.
#
# - If `docker info` already answers, do nothing (exit 0).
# - Otherwise start dockerd in the background with no bridge, no iptables and no
#   masquerading (tests only use network_mode=none and must never touch the
#   host's network), log to $ZUND_CI_DIR (default /tmp), and write the PID to
#   $ZUND_CI_DIR/dockerd.pid so CI can stop exactly that process. It runs in its own
#   session (setsid): Ctrl-C elsewhere never stops it; tools/stop-dockerd.sh does.
# - Wait up to $DOCKERD_WAIT_S (default 60) seconds for `docker info` to work.
set -eu

dir="${ZUND_CI_DIR:-/tmp}"
wait_s="${DOCKERD_WAIT_S:-60}"
log="$dir/dockerd.log"
pidfile="$dir/dockerd.pid"

if docker info >/dev/null 2>&1; then
    echo "start-dockerd: engine already running"
    exit 0
fi

mkdir -p "$dir"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "start-dockerd: dockerd pid $(cat "$pidfile") exists but does not answer yet; waiting"
else
    # dockerd spawns its own containerd when none is running. setsid: its own session
    # and process group, so Ctrl-C on the script or terminal that started it (e.g.
    # the quickstart's `zund serve`) never reaches it; only tools/stop-dockerd.sh
    # (or run-tests.sh's cleanup, by this PID) stops it. A background child of this
    # non-interactive shell is no group leader, so setsid execs dockerd in place and
    # $! is dockerd's own PID.
    setsid dockerd --bridge=none --iptables=false --ip-masq=false \
        --pidfile "$dir/dockerd.self.pid" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "start-dockerd: started dockerd pid $(cat "$pidfile") in its own session, log $log"
    echo "start-dockerd: stop it with: ZUND_CI_DIR=$dir bash tools/stop-dockerd.sh"
fi

i=0
while [ "$i" -lt "$wait_s" ]; do
    if docker info >/dev/null 2>&1; then
        echo "start-dockerd: engine ready after ${i}s"
        exit 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "start-dockerd: dockerd exited; last log lines:" >&2
        tail -n 30 "$log" >&2 || true
        exit 1
    fi
    sleep 1
    i=$((i + 1))
done
echo "start-dockerd: engine not ready after ${wait_s}s; last log lines:" >&2
tail -n 30 "$log" >&2 || true
exit 1
