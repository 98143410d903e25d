#!/usr/bin/env bash
# Install what zund and its tests need on a fresh Debian 12 machine (idempotent).
#   apt: docker.io, busybox-static (+ serf for the gossip benchmark), python3-venv,
#        iperf3 + iptables (tenant networks: tests and bench/network.py),
#        mariadb-server-core + mariadb-client (the test neutron-server's database,
#        started by tools/neutron.sh itself: no system service),
#        iproute2 (network namespaces for the partition test),
#        docker-registry + apache2-utils (htpasswd) for the private-registry tests
#   pip: zund itself (editable) with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in docker.io busybox-static serf python3 python3-venv docker-registry apache2-utils iproute2 iperf3 iptables mariadb-server-core mariadb-client; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup-host: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # the tests run their own registry (tools/registry.sh), never the packaged service
    if [[ " ${need_apt[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
fi

# Always (re)install: a fresh clone elsewhere must own the `zund` script and the
# entry points (zund.runtimes, oslo.config.opts); pip is quick when deps are present.
# A stock Debian python3 refuses `pip install` (PEP 668): the tests then get their own
# venv (tools/test-python.sh says where; run-tests.sh puts it first on PATH).
venv_bin="$(bash tools/test-python.sh)"
if [ -n "$venv_bin" ]; then
    venv="$(dirname "$venv_bin")"
    if [ ! -x "$venv/bin/python3" ]; then
        echo "setup-host: python3 is externally managed (PEP 668): test venv $venv"
        python3 -m venv "$venv" || { echo "setup-host: FAILED: python3 -m venv $venv" >&2; exit 1; }
    fi
    export PATH="$venv_bin:$PATH"
fi
echo "setup-host: pip install -e .[test] ($(command -v python3))"
log="$(mktemp)"
if ! python3 -m pip install -q --disable-pip-version-check -e '.[test]' >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "setup-host: FAILED: pip install -e .[test] with $(command -v python3) (output above)." >&2
    echo "setup-host: (a stock Debian python3 gets the venv ${ZUND_TEST_VENV:-/opt/zund-test}; see tools/test-python.sh)" >&2
    exit 1
fi
grep -v -E "^(WARNING|DEPRECATION)|Location .* is ignored" "$log" || [ $? = 1 ]
rm -f "$log"
# from outside the tree, so the check sees the installed package, not ./zund
(cd / && python3 -c "import zund.cmd.main") || {
    echo "setup-host: FAILED: zund is not importable after pip install" >&2; exit 1; }
command -v zund >/dev/null || { echo "setup-host: FAILED: no zund command on PATH" >&2; exit 1; }
