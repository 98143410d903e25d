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
    for name in keystone glance registry libvirtd virtlogd dockerd; do
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
# A real private registry (docker-registry, htpasswd, storage in $ZUND_CI_DIR/registry)
# on loopback; the registry tests read its address and login from $ZUND_REGISTRY_ENV.
bash tools/registry.sh start
export ZUND_REGISTRY_ENV="$ZUND_CI_DIR/registry/registry.env"

status=0
python3 -m pytest -q -p no:cacheprovider "$@" tests || status=$?

if [ "$bench" = 1 ] && [ "$status" = 0 ]; then
    # Benchmarks measure; they assert nothing. A benchmark that crashes or runs out
    # of its time is reported loudly and listed at the end, but does not undo a
    # green test run (each one bounds its own run time).
    echo "run-tests: benchmarks"
    failed_benches=()
    # the whole run (set-up, tests, benchmarks) must end well inside CI's 90 minutes
    budget_s="${ZUND_RUN_BUDGET_S:-4800}"
    bench() {
        local limit="$1"; shift
        local left=$((budget_s - SECONDS))
        if [ "$left" -lt 120 ]; then
            echo "run-tests: BENCH SKIPPED (run budget of ${budget_s} s spent): $*" >&2
            failed_benches+=("$* (skipped)")
            return
        fi
        if [ "$left" -lt "$limit" ]; then limit=$left; fi
        local t0=$SECONDS
        if timeout "$limit" python3 "$@"; then
            echo "run-tests: bench $* took $((SECONDS - t0)) s"
        else
            local rc=$?
            echo "run-tests: BENCH FAILED (exit $rc after $((SECONDS - t0)) s): $*" >&2
            failed_benches+=("$*")
        fi
    }
    bench 900 bench/create_latency.py --runs 15
    bench 600 bench/placement.py
    bench 600 bench/placement_real.py
    bench 600 bench/gossip_sim.py
    bench 600 bench/quota_race.py
    bench 900 bench/chaos.py --sim-runs 10 --creates 100
    bench 900 bench/heal.py --rounds 2
    bench 300 bench/ws_latency.py
    bench 600 bench/gossip_vs_serf.py
    bench 900 -m bench.microvm --runs 6
    if [ "${#failed_benches[@]}" -gt 0 ]; then
        echo "run-tests: benchmarks that failed: ${failed_benches[*]}" >&2
    fi
fi
exit "$status"
