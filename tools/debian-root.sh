#!/usr/bin/env bash
# Build (once) a clean Debian 12 root filesystem with debootstrap and print the path
# of its tarball. Used by tests/real/e2e/test_install_debian.py to prove tools/install.sh
# on a stock Debian 12 with its own system Python. The root is `minbase` plus
# systemd-sysv (a Debian host's init, so `systemd-analyze verify` can check the
# installed unit inside it); it has no Python: the installer must bring it.
#
#   bash tools/debian-root.sh            # prints the tarball path, builds it if missing
#   ZUND_DEBIAN_CACHE=/var/cache/zund    # where the tarball is kept (re-runs are fast)
#
# The mirror is the one this machine's apt already uses (/etc/apt/sources.list and
# sources.list.d/*), so no other host is ever named here.
set -euo pipefail

cache="${ZUND_DEBIAN_CACHE:-/var/cache/zund}"
suite="bookworm"
tarball="$cache/debian12-$suite-minbase-systemd.tar"

die() { echo "debian-root: $*" >&2; exit 1; }

if [ -s "$tarball" ]; then
    echo "$tarball"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debian-root: apt-get install debootstrap" >&2
    apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2 \
        || die "apt-get install debootstrap failed"
fi

# The first Debian archive URI of this machine's apt sources (deb822 or one-line form),
# skipping the security archive.
mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    case "$f" in *.sources)
        uris=$(sed -n 's/^URIs:[[:space:]]*//p' "$f") ;;
    *)
        uris=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f") ;;
    esac
    for u in $uris; do
        case "$u" in *debian-security*) continue ;; */debian|*/debian/) mirror="${u%/}"; break 2 ;; esac
    done
done
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set ZUND_DEBIAN_MIRROR"
mirror="${ZUND_DEBIAN_MIRROR:-$mirror}"

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "debian-root: debootstrap --variant=minbase --include=systemd-sysv $suite from $mirror (a few minutes, once)" >&2
debootstrap --variant=minbase --include=systemd-sysv "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
}
tar -C "$work/root" --numeric-owner -cf "$work/root.tar" . || die "tar of the root failed"
mv "$work/root.tar" "$tarball"
echo "$tarball"
