#!/usr/bin/env bash
# Install zund from this checkout as a system service on Debian 12 (as root).
#
#   bash tools/install.sh [--prefix /opt/zund] [--no-docker] [--extras keystone,libvirt]
#                         [--with-client] [--enable]
#
# What it does (each step stops the install with a message and a non-zero exit if it
# fails; nothing is swallowed):
#   1. apt: python3, python3-venv (Debian's python3 is EXTERNALLY-MANAGED, PEP 668, so
#      zund gets its own virtual environment), and docker.io + busybox-static unless
#      --no-docker;
#   2. a virtual environment in PREFIX (default /opt/zund) made with the system
#      /usr/bin/python3, and zund installed into it (not editable: the checkout may go);
#   3. /usr/local/bin/zund -> PREFIX/bin/zund (and, with --with-client, the OpenStack
#      client with the Zun plugin from PyPI in the same venv: /usr/local/bin/openstack);
#   4. /etc/zund/zund.conf (written only when absent: loopback-only, noauth, Docker),
#      /var/lib/zund;
#   5. /etc/systemd/system/zund.service and /usr/share/doc/zund/README.md (the unit's
#      Documentation=); `systemctl daemon-reload` when systemd runs. The service is
#      started only with --enable (`systemctl enable --now zund`).
# Re-running it upgrades zund in place and keeps /etc/zund/zund.conf.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/zund
with_docker=1
extras=""
enable=0
with_client=0
python="${ZUND_PYTHON:-/usr/bin/python3}"

die() { echo "install: FAILED: $*" >&2; exit 1; }
step() { echo "install: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
        --no-docker) with_docker=0; shift ;;
        --extras) [ $# -ge 2 ] || die "--extras needs a list"; extras="$2"; shift 2 ;;
        --enable) enable=1; shift ;;
        --with-client) with_client=1; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "run as root (it writes $prefix, /etc/zund, /var/lib/zund, /etc/systemd)"
[ -f "$src/setup.py" ] || die "$src is not a zund checkout (no setup.py)"

# 1. Debian packages
pkgs=(python3 python3-venv)
[ "$with_docker" = 1 ] && pkgs+=(docker.io busybox-static)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi
[ -x "$python" ] || die "$python not found (set ZUND_PYTHON to the Python 3.11+ to use)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$python is older than 3.11"

# 2. virtual environment + zund
if ! "$prefix/bin/python" -c 'import sys' >/dev/null 2>&1; then
    step "virtual environment $prefix ($("$python" --version 2>&1))"
    "$python" -m venv "$prefix" || die "python3 -m venv $prefix failed (is python3-venv installed?)"
fi
spec="$src"
[ -n "$extras" ] && spec="$src[$extras]"
step "pip install $spec into $prefix"
"$prefix/bin/python" -m pip install -q --disable-pip-version-check --use-pep517 --upgrade "$spec" \
    || die "pip install into $prefix failed (output above)"

# 3. zund on PATH
ln -sfn "$prefix/bin/zund" /usr/local/bin/zund || die "cannot link /usr/local/bin/zund"
version="$(/usr/local/bin/zund --version)" || die "zund --version failed after the install"
if [ "$with_client" = 1 ]; then
    step "pip install python-openstackclient python-zunclient into $prefix"
    "$prefix/bin/python" -m pip install -q --disable-pip-version-check --upgrade \
        python-openstackclient python-zunclient || die "pip install of the OpenStack client failed"
    ln -sfn "$prefix/bin/openstack" /usr/local/bin/openstack || die "cannot link /usr/local/bin/openstack"
fi

# 4. config and state
install -d -m 0750 /etc/zund /var/lib/zund || die "cannot create /etc/zund or /var/lib/zund"
if [ ! -e /etc/zund/zund.conf ]; then
    step "writing /etc/zund/zund.conf (one node on loopback; edit it to join a cluster)"
    cat >/etc/zund/zund.conf <<'CONF' || die "cannot write /etc/zund/zund.conf"
# zund node configuration; every option with its help: zund.conf.sample in the
# source tree (etc/zund/zund.conf.sample). As installed, this node serves only on
# 127.0.0.1. To join a cluster, see "Install as a service on several hosts" in
# /usr/share/doc/zund/README.md: a key from `zund keygen` in [gossip] keys (the same
# on every node), this host's address in [peer] host_ip and [gossip] bind_host, and
# the seeds.
[DEFAULT]
state_path = /var/lib/zund
auth_strategy = noauth

[gossip]
# keys = <output of `zund keygen`>
# bind_host = <this host's address>
# seeds = <address of one or more existing nodes>:9519

[peer]
# host_ip = <this host's address>
CONF
    chmod 0640 /etc/zund/zund.conf
else
    step "keeping the existing /etc/zund/zund.conf"
fi

# 5. systemd unit and the documentation it names
install -d /etc/systemd/system /usr/share/doc/zund || die "cannot create the unit/doc directories"
sed "s#/opt/zund/bin/zund#$prefix/bin/zund#g" "$src/systemd/zund.service" \
    >/etc/systemd/system/zund.service || die "cannot write /etc/systemd/system/zund.service"
chmod 0644 /etc/systemd/system/zund.service
install -m 0644 "$src/README.md" /usr/share/doc/zund/README.md || die "cannot install the README"
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || die "systemctl daemon-reload failed"
    if [ "$enable" = 1 ]; then
        step "systemctl enable --now zund"
        systemctl enable --now zund || die "systemctl enable --now zund failed (journalctl -u zund)"
    fi
elif [ "$enable" = 1 ]; then
    die "--enable: systemd is not running on this system"
fi
step "done: $version in $prefix; zund -> /usr/local/bin/zund; config /etc/zund/zund.conf;"
step "  state /var/lib/zund; unit /etc/systemd/system/zund.service (systemctl enable --now zund)"
