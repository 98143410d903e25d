"""What the real micro-VM tests share: where libvirt and the guest's parts are,
whether they are there, a runtime config for TCG guests, and the end-of-session
sweep of a node's domains (``tests/real/runtime/conftest.py`` has the fixtures)."""

from __future__ import annotations

import os
import subprocess
import time

URI = "qemu:///system"
KERNEL = os.environ.get("ZUND_MICROVM_KERNEL", "/var/lib/zund/microvm/vmlinuz")
BUSYBOX = "/bin/busybox"
GUEST_MEMORY_MB = 128


def prerequisites() -> str | None:
    """None when everything is there, else what is missing and how to get it."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "python module libvirt missing (tools/setup-libvirt.sh installs libvirt-python)"
    if subprocess.run(["virsh", "-c", URI, "list"], capture_output=True).returncode != 0:
        return f"libvirtd does not answer on {URI} (run tools/setup-libvirt.sh)"
    if not os.path.isfile(KERNEL):
        return f"guest kernel missing at {KERNEL} (run tools/setup-libvirt.sh)"
    if not os.path.isfile(BUSYBOX):
        return f"{BUSYBOX} missing (apt-get install busybox-static)"
    return None


def make_config(state_dir: str, **overrides):
    from zund.runtimes.libvirt import LibvirtConfig

    values = dict(uri=URI, virt_type="qemu", kernel_path=KERNEL, busybox_path=BUSYBOX,
                  default_memory_mb=GUEST_MEMORY_MB, min_memory_mb=96, boot_timeout_s=60.0,
                  stop_timeout_s=5.0, images_path=os.path.join(state_dir, "images"),
                  console_path=os.path.join(state_dir, "console"),
                  volumes_path=os.path.join(state_dir, "volumes"))
    values.update(overrides)
    return LibvirtConfig(**values)


def sweep(node_prefix: str, exact: bool = False) -> None:
    """Destroy and undefine every container and warm-pool domain whose node name
    starts with ``node_prefix`` (is it, with ``exact``)."""
    import libvirt

    from zund.runtimes.libvirt import POOL_PREFIX, _meta

    conn = libvirt.open(URI)
    try:
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(("zun-", POOL_PREFIX)):
                continue
            try:
                meta = _meta(dom)
                if meta is None or not (meta.node == node_prefix if exact
                                        else meta.node.startswith(node_prefix)):
                    continue
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            except libvirt.libvirtError:
                pass  # gone meanwhile
    finally:
        conn.close()


async def wait_warm(rt, n: int = 1, timeout_s: float = 90.0) -> None:
    """Until the runtime's warm pool holds ``n`` booted guests (TimeoutError after
    ``timeout_s``: a TCG guest boots in a few seconds, a loaded host is slower)."""
    from twisted.internet import reactor, task

    deadline = time.monotonic() + timeout_s
    while await rt._call(rt.warm_guests) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {n} warm guest(s) within {timeout_s:g} s")
        await task.deferLater(reactor, 0.05, lambda: None)
