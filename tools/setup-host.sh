#!/usr/bin/env bash
# Install what zund and its tests need on a fresh Debian 12 machine (idempotent).
#   apt: docker.io, busybox-static (+ serf for the gossip benchmark)
#   pip: zund itself (editable) with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in docker.io busybox-static serf; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup-host: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Always (re)install: a fresh clone elsewhere must own the `zund` script and the
# entry points (zund.runtimes, oslo.config.opts); pip is quick when deps are present.
echo "setup-host: pip install -e .[test]"
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v -E "^(WARNING|DEPRECATION)|Location .* is ignored" || true
python3 -c "import zund" >/dev/null
