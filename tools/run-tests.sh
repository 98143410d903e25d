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
    if [ -n "${neutron_start:-}" ]; then wait "$neutron_start" 2>/dev/null || true; fi
    for name in neutron neutron-mariadb keystone glance registry libvirtd virtlogd dockerd; do
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
# A real neutron-server API (own venv, MariaDB on a socket, ML2 with an agentless
# test driver; it waits for Keystone's env file), the same way; the Neutron network
# backend's tests read its address from $ZUND_NEUTRON_ENV.
ZUND_KEYSTONE_ENV="$ZUND_CI_DIR/keystone/keystone.env" \
    bash tools/neutron.sh start >"$ZUND_CI_DIR/neutron-start.log" 2>&1 &
neutron_start=$!

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
if ! wait "$neutron_start"; then
    neutron_start=""
    cat "$ZUND_CI_DIR/neutron-start.log" >&2
    echo "run-tests: neutron did not start" >&2
    exit 1
fi
neutron_start=""
grep '^neutron.sh:' "$ZUND_CI_DIR/neutron-start.log" || true
export ZUND_NEUTRON_ENV="$ZUND_CI_DIR/neutron/neutron.env"
# A real private registry (docker-registry, htpasswd, storage in $ZUND_CI_DIR/registry)
# on loopback; the registry tests read its address and login from $ZUND_REGISTRY_ENV.
bash tools/registry.sh start
export ZUND_REGISTRY_ENV="$ZUND_CI_DIR/registry/registry.env"

status=0
pytest=(python3 -m pytest -q -p no:cacheprovider)
if [ "$#" -eq 0 ]; then
    # The pure and simulated tiers are CPU-bound and share nothing between tests
    # (in-memory networks, simulated clocks, tmp_path state): one pytest-xdist worker
    # per core (ZUND_TEST_WORKERS overrides). The real tier shares engines, loopback
    # addresses and ports, so it runs in one process, after them; its slowest tests
    # are listed (the real tier is most of a CI run's time)
    "${pytest[@]}" -n "${ZUND_TEST_WORKERS:-auto}" tests/pure tests/sim || status=$?
    "${pytest[@]}" --durations=30 --durations-min=10 tests/real || status=$?
else
    "${pytest[@]}" "$@" tests || status=$?
fi

if [ "$bench" = 1 ] && [ "$status" = 0 ]; then
    # Benchmarks measure; they assert nothing. A benchmark that crashes or runs out
    # of its time is reported loudly and listed at the end, but does not undo a
    # green test run (each one bounds its own run time).
    echo "run-tests: benchmarks"
    # the whole run (set-up, tests, benchmarks) must end well inside CI's 90 minutes:
    # bench/run_all.py gives each benchmark its own timeout, cut to what is left of
    # this budget, and prints one table (figure, zund, reference, ratio, target, met?)
    budget_s="${ZUND_RUN_BUDGET_S:-4800}"
    left=$((budget_s - SECONDS))
    if [ "$left" -lt 120 ]; then
        echo "run-tests: BENCHMARKS SKIPPED (run budget of ${budget_s} s spent)" >&2
    elif ! python3 bench/run_all.py --budget-s "$left" --out-dir "$ZUND_CI_DIR/bench"; then
        echo "run-tests: bench/run_all.py could not write its summary" >&2
    fi
fi
exit "$status"
