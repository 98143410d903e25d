#!/usr/bin/env bash
# Install zund on this Debian 12 machine and run one node on 127.0.0.1:9517 in the
# foreground (SQLite in /var/lib/zund, noauth, Docker), as root:
#
#   bash tools/quickstart.sh [--fake-runtime] [zund serve options...]
#
# 1. tools/install.sh --with-client: /opt/zund (a venv of Debian's python3),
#    /usr/local/bin/zund and /usr/local/bin/openstack (python-openstackclient +
#    python-zunclient), docker.io, busybox-static, /etc/zund, the systemd unit (not
#    started);
# 2. starts dockerd if none answers (tools/start-dockerd.sh: its own session, log and
#    PID in /var/lib/zund-dev) and builds the demo image zund-test/busybox:latest;
# 3. runs `zund serve --config-file etc/zund/dev.conf` (loopback only).
#
# Ctrl-C stops the node only. A dockerd this script started keeps running (so do its
# containers) until `bash tools/stop-dockerd.sh`.
# --fake-runtime: no Docker at all (for a chroot or container where dockerd cannot
# run): the node runs the in-process fake runtime (etc/zund/dev-fake.conf).
set -euo pipefail
cd "$(dirname "$0")/.."

fake=0
if [ "${1:-}" = "--fake-runtime" ]; then fake=1; shift; fi

if [ "$fake" = 1 ]; then
    bash tools/install.sh --with-client --no-docker
    configs=(--config-file etc/zund/dev.conf --config-file etc/zund/dev-fake.conf)
else
    bash tools/install.sh --with-client
    export ZUND_CI_DIR="${ZUND_CI_DIR:-/var/lib/zund-dev}"
    mkdir -p "$ZUND_CI_DIR"
    if ! docker info >/dev/null 2>&1; then
        sh tools/start-dockerd.sh
    fi
    sh tools/build-test-image.sh
    echo "quickstart: demo image zund-test/busybox:latest is ready"
    configs=(--config-file etc/zund/dev.conf)
fi
echo "quickstart: try: openstack --os-auth-type none --os-endpoint http://127.0.0.1:9517/v1 appcontainer list"
echo "quickstart: Ctrl-C stops this node; a dockerd started here stops with: bash tools/stop-dockerd.sh"
exec /usr/local/bin/zund serve "${configs[@]}" "$@"
