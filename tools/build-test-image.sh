#!/bin/sh
# Build the local test image zund-test/busybox:latest from Debian's static busybox.
#
# There is no registry in the test environment, so the image is imported from a
# tiny rootfs: /bin/busybox, one link per applet, a minimal /etc/passwd and /tmp.
# Idempotent: does nothing when the image exists, unless --force is given.
set -eu

image="${ZUND_TEST_IMAGE:-zund-test/busybox:latest}"
force=0
[ "${1:-}" = "--force" ] && force=1

if [ "$force" -eq 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build-test-image: $image already present"
    exit 0
fi

busybox="$(command -v busybox || true)"
[ -n "$busybox" ] || { echo "build-test-image: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ! file -L "$busybox" 2>/dev/null | grep -q "statically linked" && \
   ldd "$busybox" >/dev/null 2>&1; then
    echo "build-test-image: $busybox is dynamically linked; install busybox-static" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" \
         "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
# `busybox --list` prints bare applet names; link them all into /bin.
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat >"$root/etc/group" <<'GR'
root:x:0:
nogroup:x:65534:
GR

tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | \
    docker import --change 'CMD ["sh"]' \
        --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
echo "build-test-image: built $image"
