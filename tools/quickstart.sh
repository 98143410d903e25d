#!/usr/bin/env bash
# Set up this machine and run one zund node on 127.0.0.1:9517 in the foreground
# (SQLite store in /var/lib/zund, noauth, Docker). Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-host.sh
export ZUND_CI_DIR="${ZUND_CI_DIR:-/var/lib/zund-dev}"
mkdir -p "$ZUND_CI_DIR"
docker info >/dev/null 2>&1 || sh tools/start-dockerd.sh
sh tools/build-test-image.sh
echo "quickstart: demo image zund-test/busybox:latest is ready"
echo "quickstart: try: openstack --os-auth-type none --os-endpoint http://127.0.0.1:9517/v1 appcontainer list"
exec zund serve --config-file etc/zund/dev.conf "$@"
