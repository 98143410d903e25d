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
# a stock Debian python3 (PEP 668): setup-host.sh made the tests a venv
venv_bin="$(bash tools/test-python.sh)"
if [ -n "$venv_bin" ]; then export PATH="$venv_bin:$PATH"; fi

# Engines this run starts write their PIDs into the fresh $ZUND_CI_DIR; engines
# that were already running are left alone. Only those PIDs are stopped at exit.
cleanup() {
    for name in keystone libvirtd virtlogd dockerd; do
        f="$ZUND_CI_DIR/$name.pid"
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill -0 "$pid" 2>/dev/null || continue
        echo "run-tests: stopping $name pid $pid"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    done
}
trap cleanup EXIT

sh tools/start-dockerd.sh
sh tools/build-test-image.sh
bash tools/setup-libvirt.sh
# a real Keystone on loopback (own venv, state in $ZUND_CI_DIR/keystone); the
# tests with real tokens read its addresses from this file
bash tools/keystone.sh start
export ZUND_KEYSTONE_ENV="$ZUND_CI_DIR/keystone/keystone.env"

status=0
python3 -m pytest -q -p no:cacheprovider "$@" tests || status=$?

if [ "$bench" = 1 ] && [ "$status" = 0 ]; then
    echo "run-tests: benchmarks"
    python3 bench/create_latency.py --runs 30 || status=$?
    timeout 900 python3 bench/placement.py || status=$?
    timeout 900 python3 bench/placement_real.py || status=$?
    timeout 900 python3 bench/gossip_sim.py || status=$?
    timeout 900 python3 bench/gossip_vs_serf.py || status=$?
    timeout 900 python3 -m bench.microvm --runs 10 || status=$?
fi
exit "$status"
