#!/usr/bin/env bash
# A real Keystone (30.x) on loopback for the tests that need real tokens.
#   bash tools/keystone.sh start    # install (once), configure, run, bootstrap
#   bash tools/keystone.sh stop     # stop the Keystone this run dir started
#
# Keystone lives in its OWN virtualenv ($ZUND_KEYSTONE_VENV, default
# /opt/zund-keystone, reused when present) so its pins never touch zund's
# environment. Its state (SQLite database, fernet and credential keys, config,
# log) is built once per run under $ZUND_CI_DIR/keystone; a second `start` in the
# same run dir finds it answering and does nothing. It serves
# keystone.wsgi.api:application with gunicorn on 127.0.0.1:$ZUND_KEYSTONE_PORT
# (default: a free port), and writes:
#   $ZUND_CI_DIR/keystone.pid            gunicorn's master (tools/run-tests.sh stops it)
#   $ZUND_CI_DIR/keystone/keystone.env   KEY=VALUE lines the tests read
#                                        (tests/real/e2e/keystone.py, via $ZUND_KEYSTONE_ENV)
# Identities: admin (admin on project admin, bootstrap), zund (service user for
# auth_token: admin + service on project service), projects project-a and
# project-b, users a-admin (admin on A), a-member, a-reader (on A), b-member (on B).
# zund is registered as service type `container` (and `compute`, its Nova API on
# port 8774); the tests point its endpoint at
# the node they started.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ZUND_CI_DIR:?set ZUND_CI_DIR to this run directory}"
VENV="${ZUND_KEYSTONE_VENV:-/opt/zund-keystone}"
KEYSTONE_VERSION="${ZUND_KEYSTONE_VERSION:-30.0.0}"
RUN="$ZUND_CI_DIR/keystone"
PIDFILE="$ZUND_CI_DIR/keystone.pid"
NAME=keystone.sh
# shellcheck source=tools/lib/service.sh
. tools/lib/service.sh
ENVFILE="$RUN/keystone.env"
PASSWORD="zund-test-secret"   # loopback-only test Keystone; never a real cloud

configure() {
    mkdir -p "$RUN/fernet-keys" "$RUN/credential-keys"
    cat > "$RUN/keystone.conf" <<EOF
[DEFAULT]
log_file = $RUN/keystone.log
[database]
connection = sqlite:///$RUN/keystone.sqlite
[fernet_tokens]
key_repository = $RUN/fernet-keys
[fernet_receipts]
key_repository = $RUN/fernet-keys
[credential]
key_repository = $RUN/credential-keys
[token]
provider = fernet
[cache]
enabled = false
EOF
    # keystone parses sys.argv with oslo.config when imported: under gunicorn that
    # would be gunicorn's own argv, so the WSGI module resets it first.
    cat > "$RUN/zund_keystone_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
EOF
    local manage=("$VENV/bin/keystone-manage" --config-file "$RUN/keystone.conf")
    local owner=(--keystone-user "$(id -un)" --keystone-group "$(id -gn)")
    # the key repositories do not need the database: build them meanwhile
    "${manage[@]}" fernet_setup "${owner[@]}" & local fernet=$!
    "${manage[@]}" credential_setup "${owner[@]}" & local credential=$!
    "${manage[@]}" db_sync
    wait "$fernet"
    wait "$credential"
}

bootstrap() {
    "$VENV/bin/keystone-manage" --config-file "$RUN/keystone.conf" bootstrap \
        --bootstrap-password "$PASSWORD" \
        --bootstrap-admin-url "$URL/v3" --bootstrap-internal-url "$URL/v3" \
        --bootstrap-public-url "$URL/v3" --bootstrap-region-id RegionOne
}

populate() {
    # One OSC process for all of it (`openstack` in batch mode is far faster than a
    # process per command).
    export OS_AUTH_URL="$URL/v3" OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin \
        OS_PASSWORD="$PASSWORD" OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default \
        OS_PROJECT_DOMAIN_NAME=Default OS_INTERFACE=public OS_REGION_NAME=RegionOne
    # (the batch shell exits 1 even when every command worked: checked below)
    openstack <<EOF >/dev/null || true
project create --domain default service
project create --domain default project-a
project create --domain default project-b
user create --domain default --password $PASSWORD zund
user create --domain default --password $PASSWORD a-admin
user create --domain default --password $PASSWORD a-member
user create --domain default --password $PASSWORD a-reader
user create --domain default --password $PASSWORD b-member
role add --project service --user zund admin
role add --project service --user zund service
role add --project project-a --user a-admin admin
role add --project project-a --user a-member member
role add --project project-a --user a-reader reader
role add --project project-b --user b-member member
service create --name zun container
endpoint create --region RegionOne container public $ZUND_ENDPOINT
endpoint create --region RegionOne container internal $ZUND_ENDPOINT
service create --name zund-nova compute
endpoint create --region RegionOne compute public $ZUND_COMPUTE_ENDPOINT
endpoint create --region RegionOne compute internal $ZUND_COMPUTE_ENDPOINT
EOF
    # batch mode does not stop at an error: check the last step landed
    if [ -z "$(openstack endpoint list --service container -f value -c ID)" ]; then
        log "populating keystone failed"
        return 1
    fi
}

start() {
    if up_already; then return; fi
    stop  # a half-started one from this run dir
    local t0=$SECONDS
    install_venv "$VENV" keystone "$KEYSTONE_VERSION" keystone-manage
    local t1=$SECONDS
    PORT="${ZUND_KEYSTONE_PORT:-$(free_port)}"
    URL="http://127.0.0.1:$PORT"
    ZUND_ENDPOINT="${ZUND_KEYSTONE_ZUND_ENDPOINT:-http://127.0.0.1:9517/v1}"
    # the Nova-compatible compute API ([nova_api] port): zund is `compute` too
    ZUND_COMPUTE_ENDPOINT="${ZUND_KEYSTONE_COMPUTE_ENDPOINT:-http://127.0.0.1:8774/v2.1}"
    rm -rf "$RUN"
    mkdir -p "$RUN"
    configure
    OS_KEYSTONE_CONFIG_DIR="$RUN" setsid "$VENV/bin/gunicorn" --chdir "$RUN" \
        --bind "127.0.0.1:$PORT" --workers 2 --timeout 60 --graceful-timeout 5 \
        --error-logfile "$RUN/gunicorn.log" zund_keystone_wsgi:application \
        </dev/null >>"$RUN/gunicorn.log" 2>&1 &
    echo $! > "$PIDFILE"
    # the API answers /v3 without the bootstrap rows: both go on at once
    bootstrap & local boot=$!
    if ! serving "$URL/v3" 90 "$RUN/gunicorn.log" "$RUN/keystone.log"; then
        wait "$boot" || true
        stop
        return 1
    fi
    wait "$boot" || { log "bootstrap failed"; stop; return 1; }
    populate || { stop; return 1; }
    cat > "$ENVFILE" <<EOF
OS_AUTH_URL=$URL/v3
OS_REGION_NAME=RegionOne
ZUND_KEYSTONE_PASSWORD=$PASSWORD
ZUND_KEYSTONE_SERVICE_USER=zund
ZUND_KEYSTONE_SERVICE_PROJECT=service
EOF
    log "running on $URL (pid $(cat "$PIDFILE")); install $((t1 - t0))s, setup $((SECONDS - t1))s"
}

main "$@"
