#!/usr/bin/env bash
# The project's test command (README, CI): set the host up, start the engines the
# real tiers need, run every tier, stop what this script started.
#   bash tools/run-tests.sh [--bench] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bench=0
if [ "${1:-}" = "--bench" ]; then bench=1; shift; fi

export ZUND_CI_DIR="${ZUND_CI_DIR:-$(mktemp -d /tmp/zund-ci.XXXXXX)}"
bash tools/setup-host.sh

started_dockerd=0
cleanup() {
    if [ "$started_dockerd" = 1 ] && [ -f "$ZUND_CI_DIR/dockerd.pid" ]; then
        pid=$(cat "$ZUND_CI_DIR/dockerd.pid")
        echo "run-tests: stopping dockerd pid $pid"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    sh tools/start-dockerd.sh
    started_dockerd=1
fi
sh tools/build-test-image.sh

status=0
python3 -m pytest -q -p no:cacheprovider "$@" tests || status=$?

if [ "$bench" = 1 ] && [ "$status" = 0 ]; then
    echo "run-tests: benchmarks"
    python3 bench/create_latency.py --runs 30 || status=$?
    for b in bench/gossip_sim.py bench/gossip_vs_serf.py; do
        if [ -f "$b" ]; then timeout 900 python3 "$b" || status=$?; fi
    done
fi
exit "$status"
