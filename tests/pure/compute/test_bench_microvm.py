"""bench/microvm.py's pure parts: the bare reference is libvirt's own QEMU command
line minus libvirt's handshake, and the summary reports spreads and paired ratios."""

from __future__ import annotations

import pytest

from bench import microvm

#: A QEMU command line as libvirt 9.0 writes it for a zund microvm domain (abridged
#: only in the values, not in the options).
LIBVIRT_ARGV = [
    "/usr/bin/qemu-system-x86_64", "-name", "guest=zun-1,debug-threads=on", "-S",
    "-object", '{"qom-type":"secret","id":"masterKey0","format":"raw","file":"/k.aes"}',
    "-machine", "microvm,usb=off,dump-guest-core=off,memory-backend=microvm.ram",
    "-accel", "tcg", "-cpu", "qemu64", "-m", "128",
    "-object", '{"qom-type":"memory-backend-ram","id":"microvm.ram","size":134217728}',
    "-overcommit", "mem-lock=off", "-smp", "1,sockets=1,cores=1,threads=1",
    "-display", "none", "-no-user-config", "-nodefaults",
    "-chardev", "socket,id=charmonitor,fd=29,server=on,wait=off",
    "-mon", "chardev=charmonitor,id=monitor,mode=control",
    "-rtc", "base=utc", "-no-shutdown", "-boot", "strict=on",
    "-kernel", "/vmlinuz", "-initrd", "/run/zun-1.initrd", "-append", "console=ttyS0 quiet",
    "-add-fd", "set=0,fd=28,opaque=serial0-source",
    "-chardev", "file,id=charserial0,path=/dev/fdset/0,append=on",
    "-device", '{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}',
    "-chardev", "socket,id=charserial1,fd=26,server=on,wait=off",
    "-device", '{"driver":"isa-serial","chardev":"charserial1","id":"serial1","index":1}',
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-msg", "timestamp=on",
]


def _opt(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_bare_reference_keeps_everything_the_guest_runs_with():
    """Machine, accel, CPU model, memory, sandbox and kernel command line are libvirt's own."""
    bare = microvm.bare_argv_from_runtime(LIBVIRT_ARGV, "/copy.initrd", "/s.log", "/c.sock")
    for flag in ("-machine", "-accel", "-cpu", "-m", "-overcommit", "-smp", "-rtc",
                 "-sandbox", "-append", "-kernel", "-device"):
        assert _opt(bare, flag) == _opt(LIBVIRT_ARGV, flag), flag
    assert '{"qom-type":"memory-backend-ram","id":"microvm.ram","size":134217728}' in bare
    assert {"-nodefaults", "-no-user-config", "-no-shutdown"} <= set(bare)
    assert _opt(bare, "-initrd") == ["/copy.initrd"]


def test_bare_reference_drops_only_libvirts_handshake_and_descriptors():
    """No -S, monitor, secret or inherited fd: the console and control line become paths."""
    bare = microvm.bare_argv_from_runtime(LIBVIRT_ARGV, "/copy.initrd", "/s.log", "/c.sock")
    assert "-S" not in bare and "-mon" not in bare and "-add-fd" not in bare
    assert not any("secret" in a or "fd=" in a or "/dev/fdset" in a for a in bare)
    assert _opt(bare, "-chardev") == ["file,id=charserial0,path=/s.log,append=on",
                                      "socket,id=charserial1,path=/c.sock,server=on,wait=off"]


def test_bare_reference_refuses_a_descriptor_it_does_not_know():
    """A new fd-passing option raises instead of giving a reference unlike the runtime."""
    argv = LIBVIRT_ARGV + ["-netdev", "tap,id=net0,fd=31"]
    with pytest.raises(ValueError, match="descriptor"):
        microvm.bare_argv_from_runtime(argv, "/i", "/s", "/c")


def test_summary_reports_spread_and_paired_ratios():
    """Each side's min/median/max, ratio of medians, per-round paired ratio and CPU ratio."""
    def rnd(rt, bare):
        return {"runtime": {"wall": rt, "create": 0.01, "start": rt - 0.01, "launch": 0.02,
                            "qemu": rt - 0.2, "vcpu": rt - 0.4, "zund": 0.1, "libvirtd": 0.03},
                "bare": {"wall": bare, "cpu": bare - 0.1, "vcpu": bare - 0.15}}

    out = microvm.summarize([rnd(3.0, 3.0), rnd(4.0, 2.0), rnd(3.3, 3.0)])
    assert out["runtime_s"] == {"min": 3.0, "median": 3.3, "max": 4.0}
    assert out["bare_qemu_s"] == {"min": 2.0, "median": 3.0, "max": 3.0}
    assert out["ratio"] == 1.1 and out["met"] is True
    assert out["paired_ratios"] == [1.0, 2.0, 1.1]
    assert out["paired_ratio_median"] == 1.1
    assert out["min_ratio"] == 1.5
    assert out["cpu_ratio"] == round((3.1 + 0.1 + 0.03) / 2.9, 3)  # QEMU + zund + libvirtd
    assert out["runtime_cpu_vcpu_median_s"] == 2.9 and out["bare_qemu_cpu_vcpu_median_s"] == 2.85


def test_summary_splits_libvirts_start_handshake_from_the_guests_boot():
    """guest_ratio compares cont -> running with the bare boot; the handshake is reported apart."""
    def rnd(handshake, guest, bare):
        wall = 0.03 + handshake + guest
        return {"runtime": {"wall": wall, "create": 0.01, "start": wall - 0.01, "launch": 0.02,
                            "handshake": handshake, "guest": guest, "qemu_at_cont": 0.27,
                            "qemu": wall - 0.2, "vcpu": guest - 0.1, "vcpu_guest": guest - 0.1,
                            "zund": 0.1, "libvirtd": 0.03},
                "bare": {"wall": bare, "cpu": bare - 0.1, "vcpu": bare - 0.15}}

    out = microvm.summarize([rnd(0.4, 2.6, 2.6), rnd(0.3, 3.0, 2.5), rnd(0.35, 2.7, 3.0)])
    assert out["runtime_handshake_median_s"] == 0.35
    assert out["runtime_handshake_samples_s"] == [0.4, 0.3, 0.35]
    assert out["runtime_guest_median_s"] == 2.7
    assert out["guest_ratio"] == round(2.7 / 2.6, 3)
    assert out["paired_guest_ratio_median"] == 1.0
    assert out["runtime_cpu_qemu_at_cont_median_s"] == 0.27
    assert out["runtime_vcpu_samples_s"] == [2.5, 2.9, 2.6]
