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
    # a Keystone still starting writes its PID file first: let it finish
    if [ -n "${keystone_start:-}" ]; then wait "$keystone_start" 2>/dev/null || true; fi
    if [ -n "${glance_start:-}" ]; then wait "$glance_start" 2>/dev/null || true; fi
    for name in keystone glance libvirtd virtlogd dockerd; do
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

# A real Keystone on loopback (own venv, state in $ZUND_CI_DIR/keystone), started
# in the background while the engines come up; the tests with real tokens read
# its addresses from $ZUND_KEYSTONE_ENV.
bash tools/keystone.sh start >"$ZUND_CI_DIR/keystone-start.log" 2>&1 &
keystone_start=$!
# A real Glance (noauth, own venv, SQLite + file store in $ZUND_CI_DIR/glance), the
# same way; the Glance image driver's tests read its address from $ZUND_GLANCE_ENV.
bash tools/glance.sh start >"$ZUND_CI_DIR/glance-start.log" 2>&1 &
glance_start=$!

sh tools/start-dockerd.sh
sh tools/build-test-image.sh
bash tools/setup-libvirt.sh
if ! wait "$keystone_start"; then
    keystone_start=""
    cat "$ZUND_CI_DIR/keystone-start.log" >&2
    echo "run-tests: keystone did not start" >&2
    exit 1
fi
keystone_start=""
grep '^keystone.sh:' "$ZUND_CI_DIR/keystone-start.log" || true
export ZUND_KEYSTONE_ENV="$ZUND_CI_DIR/keystone/keystone.env"
if ! wait "$glance_start"; then
    glance_start=""
    cat "$ZUND_CI_DIR/glance-start.log" >&2
    echo "run-tests: glance did not start" >&2
    exit 1
fi
glance_start=""
grep '^glance.sh:' "$ZUND_CI_DIR/glance-start.log" || true
export ZUND_GLANCE_ENV="$ZUND_CI_DIR/glance/glance.env"

status=0
python3 -m pytest -q -p no:cacheprovider "$@" tests || status=$?

if [ "$bench" = 1 ] && [ "$status" = 0 ]; then
    echo "run-tests: benchmarks"
    python3 bench/create_latency.py --runs 30 || status=$?
    timeout 900 python3 bench/placement.py || status=$?
    timeout 900 python3 bench/placement_real.py || status=$?
    timeout 900 python3 bench/gossip_sim.py || status=$?
    timeout 900 python3 bench/quota_race.py || status=$?
    timeout 1800 python3 bench/chaos.py || status=$?
    timeout 900 python3 bench/gossip_vs_serf.py || status=$?
    timeout 900 python3 -m bench.microvm --runs 10 || status=$?
fi
exit "$status"
