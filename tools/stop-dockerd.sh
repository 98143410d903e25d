#!/bin/sh
# Stop the dockerd that tools/start-dockerd.sh started (the quickstart's, by default),
# by the PID it recorded, and wait for it to exit. Never touches a dockerd it did not
# start (e.g. the system's docker.service).
#
#   bash tools/stop-dockerd.sh                       # the quickstart's (/var/lib/zund-dev)
#   ZUND_CI_DIR=/tmp/zund-ci.X bash tools/stop-dockerd.sh
#
# Running containers stop with it (they are restarted by zund/docker policies later).
set -eu

dir="${ZUND_CI_DIR:-/var/lib/zund-dev}"
pidfile="$dir/dockerd.pid"
wait_s="${DOCKERD_STOP_WAIT_S:-30}"

if [ ! -f "$pidfile" ]; then
    echo "stop-dockerd: no $pidfile: no dockerd started by tools/start-dockerd.sh there" >&2
    exit 1
fi
pid="$(cat "$pidfile")"
if ! kill -0 "$pid" 2>/dev/null; then
    echo "stop-dockerd: dockerd pid $pid is not running"
    rm -f "$pidfile"
    exit 0
fi
comm="$(cat "/proc/$pid/comm" 2>/dev/null || echo '?')"
case "$comm" in
    dockerd) ;;
    *) echo "stop-dockerd: pid $pid is '$comm', not dockerd; not stopping it" >&2; exit 1 ;;
esac
echo "stop-dockerd: stopping dockerd pid $pid"
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
    if [ "$i" -ge "$wait_s" ]; then
        echo "stop-dockerd: dockerd pid $pid still running after ${wait_s}s" >&2
        exit 1
    fi
    sleep 1
    i=$((i + 1))
done
rm -f "$pidfile"
echo "stop-dockerd: stopped"
