#!/usr/bin/env bash
# A real neutron-server API (29.x) on loopback for zund's Neutron network backend tests.
#   bash tools/neutron.sh start    # install (once), MariaDB, configure, migrate, run
#   bash tools/neutron.sh stop     # stop the neutron-server and MariaDB this run dir started
#
# Neutron lives in its OWN virtualenv ($ZUND_NEUTRON_VENV, default /opt/zund-neutron,
# reused when present) so its pins never touch zund's environment. It runs:
# - MariaDB (Debian's mariadb-server, tools/setup-host.sh installs it) with its own
#   datadir under $ZUND_CI_DIR/neutron/mysql, on a unix socket only (no TCP);
# - neutron's WSGI API (neutron.wsgi.api) under gunicorn on 127.0.0.1:$ZUND_NEUTRON_PORT
#   (default: a free port), ML2 with the `vxlan` type driver (segments are rows: no
#   data plane) and tests/support/neutron_mech.py, an agentless mechanism driver that
#   binds every port (vif_type `bridge`, `ovs` on hosts named *-ovs*) and sets it
#   ACTIVE (left DOWN on hosts named *-stuck*); no RPC server, no agents, no Nova
#   notifications (oslo.messaging's in-process `fake` transport);
# - authentication by the run's real Keystone ($ZUND_KEYSTONE_ENV, written by
#   tools/keystone.sh: this script waits for it), where Neutron is registered as
#   service type `network`; the service user `zund` validates tokens.
# It writes:
#   $ZUND_CI_DIR/neutron.pid           gunicorn's master   } tools/run-tests.sh
#   $ZUND_CI_DIR/neutron-mariadb.pid   mariadbd            } stops both
#   $ZUND_CI_DIR/neutron/neutron.env   KEY=VALUE lines the tests read ($ZUND_NEUTRON_ENV)
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ZUND_CI_DIR:?set ZUND_CI_DIR to this run directory}"
VENV="${ZUND_NEUTRON_VENV:-/opt/zund-neutron}"
NEUTRON_VERSION="${ZUND_NEUTRON_VERSION:-29.0.0}"
KEYSTONE_ENV="${ZUND_KEYSTONE_ENV:-$ZUND_CI_DIR/keystone/keystone.env}"
RUN="$ZUND_CI_DIR/neutron"
PIDFILE="$ZUND_CI_DIR/neutron.pid"
DB_PIDFILE="$ZUND_CI_DIR/neutron-mariadb.pid"
NAME=neutron.sh
# shellcheck source=tools/lib/service.sh
. tools/lib/service.sh
ENVFILE="$RUN/neutron.env"
SOCK="$RUN/mysql.sock"
DB_PASSWORD="zund-neutron-db"   # loopback-only test database, socket only

install() {
    install_venv "$VENV" neutron "$NEUTRON_VERSION" neutron-db-manage
    # PyMySQL: neutron's MariaDB driver; setuptools + wheel: to build the driver below
    if ! "$VENV/bin/python" -c 'import pymysql, wheel, setuptools' 2>/dev/null; then
        log "installing PyMySQL, wheel, setuptools into $VENV"
        "$VENV/bin/python" -m pip install -q PyMySQL wheel setuptools
    fi
    # the test mechanism driver, as a tiny distribution with its ML2 entry point
    local src="$RUN/mech-src" have
    have=$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("zund_neutron_mech").origin)' 2>/dev/null || true)
    if [ -n "$have" ] && cmp -s "$have" tests/support/neutron_mech.py; then return; fi
    mkdir -p "$src"
    cp tests/support/neutron_mech.py "$src/zund_neutron_mech.py"
    cat > "$src/setup.py" <<'EOF'
from setuptools import setup
setup(name="zund-neutron-test-mech", version="0", py_modules=["zund_neutron_mech"],
      entry_points={"neutron.ml2.mechanism_drivers": [
          "zund_test = zund_neutron_mech:ZundTestMechanismDriver"]})
EOF
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation "$src" >/dev/null
}

db_running() { alive "$DB_PIDFILE"; }

start_db() {
    mkdir -p "$RUN/mysql" "$RUN/mysql-tmp"
    mariadb-install-db --no-defaults --datadir="$RUN/mysql" --user=root \
        --auth-root-authentication-method=socket --skip-test-db >"$RUN/mysql-install.log" 2>&1
    setsid mariadbd --no-defaults --datadir="$RUN/mysql" --socket="$SOCK" \
        --skip-networking --user=root --tmpdir="$RUN/mysql-tmp" \
        --pid-file="$RUN/mariadbd.pid" --log-error="$RUN/mysql.log" \
        --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
        --skip-log-bin --character-set-server=utf8mb4 </dev/null >/dev/null 2>&1 &
    echo $! > "$DB_PIDFILE"
    local deadline=$((SECONDS + 60))
    until mariadb --no-defaults -S "$SOCK" -u root -e 'select 1' >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ] || ! db_running; then
            log "mariadb did not start; last log lines:"
            tail -n 20 "$RUN/mysql.log" || true
            return 1
        fi
        sleep 0.2
    done
    mariadb --no-defaults -S "$SOCK" -u root <<EOF
CREATE DATABASE neutron CHARACTER SET utf8mb4;
CREATE USER 'neutron'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON neutron.* TO 'neutron'@'localhost';
EOF
}

configure() {
    mkdir -p "$RUN/state" "$RUN/lock"
    cp "$VENV/etc/neutron/api-paste.ini" "$RUN/api-paste.ini"
    cat > "$RUN/neutron.conf" <<EOF
[DEFAULT]
log_file = $RUN/neutron.log
state_path = $RUN/state
host = zund-test-neutron
api_paste_config = $RUN/api-paste.ini
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = fake:/
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
allow_overlapping_ips = true
[database]
connection = mysql+pymysql://neutron:$DB_PASSWORD@localhost/neutron?unix_socket=$SOCK&charset=utf8mb4
[oslo_concurrency]
lock_path = $RUN/lock
[keystone_authtoken]
www_authenticate_uri = $OS_AUTH_URL
auth_url = $OS_AUTH_URL
auth_type = password
username = $ZUND_KEYSTONE_SERVICE_USER
password = $ZUND_KEYSTONE_PASSWORD
project_name = $ZUND_KEYSTONE_SERVICE_PROJECT
user_domain_name = Default
project_domain_name = Default
region_name = $OS_REGION_NAME
[ml2]
type_drivers = vxlan
tenant_network_types = vxlan
mechanism_drivers = zund_test
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:4000
[securitygroup]
enable_security_group = true
EOF
    # neutron parses sys.argv with oslo.config when its WSGI module is imported:
    # under gunicorn that would be gunicorn's own argv, so reset it first.
    cat > "$RUN/zund_neutron_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]
from neutron.wsgi.api import application  # noqa: E402,F401
EOF
}

# The schema: neutron-db-manage's hundreds of migrations once per Neutron version,
# then a dump of the result loaded in a second or two (the dump lies beside the venv).
migrate() {
    local cache="$VENV/zund-neutron-db-$NEUTRON_VERSION.sql"
    if [ -s "$cache" ]; then
        mariadb --no-defaults -S "$SOCK" -u root neutron < "$cache" && return
        log "loading $cache failed: migrating instead"
        mariadb --no-defaults -S "$SOCK" -u root \
            -e 'DROP DATABASE neutron; CREATE DATABASE neutron CHARACTER SET utf8mb4;'
    fi
    "$VENV/bin/neutron-db-manage" --config-file "$RUN/neutron.conf" upgrade heads \
        >"$RUN/db-manage.log" 2>&1 || { log "neutron-db-manage failed:"; tail -n 30 "$RUN/db-manage.log"; return 1; }
    mariadb-dump --no-defaults -S "$SOCK" -u root neutron > "$cache.tmp" && mv "$cache.tmp" "$cache"
}

read_keystone_env() {
    local deadline=$((SECONDS + ${ZUND_NEUTRON_KEYSTONE_WAIT_S:-240}))
    until [ -s "$KEYSTONE_ENV" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "no Keystone env file at $KEYSTONE_ENV (start tools/keystone.sh first)"
            return 1
        fi
        sleep 0.5
    done
    set -a
    # shellcheck disable=SC1090
    . "$KEYSTONE_ENV"
    set +a
}

# Neutron as service type `network` in the catalog, its endpoints pointing at $URL
# (an older run's endpoints are repointed).
register() {
    "$VENV/bin/python" - "$URL" <<'PY'
import os, sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
url = sys.argv[1]
s = session.Session(auth=v3.Password(
    auth_url=os.environ["OS_AUTH_URL"], username="admin",
    password=os.environ["ZUND_KEYSTONE_PASSWORD"], project_name="admin",
    user_domain_name="Default", project_domain_name="Default"))
ep = {"service_type": "identity", "interface": "public"}
svcs = s.get("/services?type=network", endpoint_filter=ep).json()["services"]
if svcs:
    sid = svcs[0]["id"]
else:
    sid = s.post("/services", json={"service": {"type": "network", "name": "neutron"}},
                 endpoint_filter=ep).json()["service"]["id"]
have = s.get(f"/endpoints?service_id={sid}", endpoint_filter=ep).json()["endpoints"]
for iface in ("public", "internal"):
    mine = [e for e in have if e["interface"] == iface]
    for e in mine:
        s.patch(f"/endpoints/{e['id']}", json={"endpoint": {"url": url}}, endpoint_filter=ep)
    if not mine:
        s.post("/endpoints", json={"endpoint": {
            "service_id": sid, "interface": iface, "url": url,
            "region_id": os.environ["OS_REGION_NAME"]}}, endpoint_filter=ep)
PY
}

start() {
    if db_running && up_already; then return; fi
    stop  # a half-started one from this run dir
    local t0=$SECONDS
    rm -rf "$RUN"
    mkdir -p "$RUN"
    install
    local t1=$SECONDS
    start_db || { stop; return 1; }
    read_keystone_env || { stop; return 1; }
    PORT="${ZUND_NEUTRON_PORT:-$(free_port)}"
    URL="http://127.0.0.1:$PORT"
    configure
    migrate || { stop; return 1; }
    local t2=$SECONDS
    OS_NEUTRON_CONFIG_DIR="$RUN" OS_NEUTRON_CONFIG_FILES="neutron.conf" \
        setsid "$VENV/bin/gunicorn" --chdir "$RUN" \
        --bind "127.0.0.1:$PORT" --workers 1 --threads 4 --timeout 120 \
        --error-logfile "$RUN/gunicorn.log" zund_neutron_wsgi:application \
        </dev/null >>"$RUN/gunicorn.log" 2>&1 &
    echo $! > "$PIDFILE"
    register & local reg=$!
    if ! serving "$URL/" 120 "$RUN/gunicorn.log" "$RUN/neutron.log"; then
        wait "$reg" || true
        stop
        return 1
    fi
    wait "$reg" || { log "registering neutron in keystone failed"; stop; return 1; }
    cat > "$ENVFILE" <<EOF
ZUND_NEUTRON_URL=$URL
EOF
    log "running on $URL (pid $(cat "$PIDFILE")); install $((t1 - t0))s, db+migrate $((t2 - t1))s, server $((SECONDS - t2))s"
}

stop() {  # gunicorn, then MariaDB (given longer to flush)
    stop_pidfile "$PIDFILE" neutron
    stop_pidfile "$DB_PIDFILE" mariadb 100
}

main "$@"
