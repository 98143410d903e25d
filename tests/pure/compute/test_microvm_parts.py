"""Pure parts of the micro-VM runtime: cpio writer, initramfs layers, domain XML,
console parsing, resource mapping. No libvirt, no docker, no VM."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile

import pytest

from zund.runtimes.microvm import domain_xml as dx
from zund.runtimes.microvm import initramfs
from zund.runtimes.microvm.cpio import CpioWriter, read_entries
from zund.runtimes.microvm.init import parse_console


def test_cpio_round_trips_every_entry_kind():
    """Dirs, files, symlinks, hard links and devices come back with mode, data and rdev."""
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_dir("bin", 0o755)
    ino = w.add_file("bin/busybox", b"\x7fELF" + b"x" * 5, 0o755, nlink=2)
    w.add_hardlink("bin/sh", ino, 0o755)
    w.add_symlink("bin/ls", "busybox")
    w.add_device("console", stat.S_IFCHR, 5, 1, 0o600)
    w.close()
    data = buf.getvalue()
    assert len(data) % 4 == 0
    entries = {e[0]: e for e in read_entries(data)}
    assert stat.S_ISDIR(entries["bin"][1])
    assert entries["bin/busybox"][4] == b"\x7fELF" + b"x" * 5
    assert stat.S_IMODE(entries["bin/busybox"][1]) == 0o755
    assert entries["bin/sh"][2] == ino and entries["bin/sh"][3] == 2 and entries["bin/sh"][4] == b""
    assert stat.S_ISLNK(entries["bin/ls"][1]) and entries["bin/ls"][4] == b"busybox"
    assert stat.S_ISCHR(entries["console"][1]) and entries["console"][5] == (5, 1)


def test_cpio_refuses_writes_after_close():
    """The trailer ends the archive."""
    w = CpioWriter(io.BytesIO())
    w.close()
    with pytest.raises(ValueError):
        w.add_dir("x")


def _tar(tmp_path) -> str:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        for name, kind in (("./", tarfile.DIRTYPE), ("./bin", tarfile.DIRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("./bin/busybox")
        info.size, info.mode = 3, 0o755
        tar.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("./bin/sh")
        link.type, link.linkname, link.mode = tarfile.LNKTYPE, "./bin/busybox", 0o755
        tar.addfile(link)
        sym = tarfile.TarInfo("./bin/ls")
        sym.type, sym.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(sym)
        init = tarfile.TarInfo("./init")
        init.size = 1
        tar.addfile(init, io.BytesIO(b"!"))
    return str(path)


def test_image_initramfs_has_rootfs_then_zund_layer(tmp_path):
    """The built initramfs: the image's files (hard link kept), then zund's /init and busybox."""
    out = tmp_path / "img.cpio.gz"
    initramfs.build_image_initramfs(_tar(tmp_path), b"BUSYBOX", str(out))
    raw = out.read_bytes()
    # Two gzip members; gzip.decompress reads both.
    entries = read_entries(gzip.decompress(raw))
    names = [e[0] for e in entries]
    assert names.index("bin/busybox") < names.index("init")
    assert names.count("init") == 1, "the image's /init is replaced by zund's"
    by_name = {e[0]: e for e in entries}
    assert by_name["bin/sh"][2] == by_name["bin/busybox"][2]
    assert by_name[".zund/busybox"][4] == b"BUSYBOX"
    assert by_name["init"][4].startswith(b"#!/.zund/busybox sh")
    assert stat.S_ISCHR(by_name["dev/console"][1])


def test_resolve_argv_follows_docker_rules():
    """entrypoint + cmd; a spec entrypoint drops the image's Cmd."""
    image = {"Entrypoint": ["/ep"], "Cmd": ["a"]}
    assert initramfs.resolve_argv(None, None, image) == ["/ep", "a"]
    assert initramfs.resolve_argv(None, ("b",), image) == ["/ep", "b"]
    assert initramfs.resolve_argv(("echo",), None, image) == ["echo"]
    assert initramfs.resolve_argv(None, None, {"Cmd": ["sh"]}) == ["sh"]


def test_container_config_quotes_everything():
    """Hostile values stay data: every word is shell-quoted."""
    env = initramfs.resolve_env({"Env": ["PATH=/bin"]}, {"X": "a'b; rm -rf /"}, "h")
    text = initramfs.container_config(["sh", "-c", "echo $X"], env, "/tmp", "h")
    assert "ZUND_PATH=/bin" in text
    assert "'X=a'\"'\"'b; rm -rf /'" in text
    assert "'echo $X'" in text
    assert "ZUND_PROG=sh" in text


def test_domain_xml_has_no_interface_and_metadata_round_trips():
    """No network device; the zund metadata parses back, with or without its namespace."""
    meta = dx.DomainMeta(uuid="0b7c1a70-9d9a-4a55-8a0f-3c1d2e4f5a6b", node="n1", project_id="p",
                         hostname="h", image="i", ports=(53, 80), auto_remove=True)
    xml = dx.domain_xml(dx.DomainSpec(name="zun-x", meta=meta, virt_type="qemu", vcpus=2,
                                      memory_mb=128, kernel="/k", initrd="/i",
                                      console_log="/c.log", control_socket="/c.ctl"))
    assert "<interface" not in xml
    assert "<uuid>0b7c1a70-9d9a-4a55-8a0f-3c1d2e4f5a6b</uuid>" in xml
    assert dx.parse_metadata(dx.metadata_xml(meta)) == meta
    plain = ("<container><uuid>u</uuid><node>n</node><project>p</project>"
             "<ports>80</ports></container>")
    assert dx.parse_metadata(plain).ports == (80,)
    assert dx.parse_metadata("<other/>") is None


def test_warm_guest_metadata_and_claimed_domain_uuid():
    """A warm guest's metadata says so and parses back; the element given to
    virDomainSetMetadata has no namespace and parses to the same; a claimed
    guest keeps its own libvirt id while carrying the container's metadata, and
    the container's domain name as its title."""
    warm = dx.DomainMeta(uuid="guest-id", node="n1", project_id="", pool=True)
    assert dx.parse_metadata(dx.metadata_xml(warm)) == warm
    container = dx.DomainMeta(uuid="0b7c1a70-9d9a-4a55-8a0f-3c1d2e4f5a6b", node="n1",
                              project_id="p", hostname="h")
    bare = dx.metadata_xml(container, namespaced=False)
    assert "xmlns" not in bare and "zund:" not in bare
    assert dx.parse_metadata(bare) == container and not container.pool
    guest_uuid = "7e1f6b1e-2f0a-4d5e-9a3b-0c1d2e3f4a5b"
    xml = dx.domain_xml(dx.DomainSpec(name="zunpool-" + guest_uuid, meta=container,
                                      virt_type="qemu", vcpus=1, memory_mb=128, kernel="/k",
                                      initrd="/i", console_log="/c.log",
                                      control_socket="/c.ctl", domain_uuid=guest_uuid,
                                      title="zun-" + container.uuid))
    assert f"<uuid>{guest_uuid}</uuid>" in xml and container.uuid in xml  # meta keeps it
    assert f"<title>zun-{container.uuid}</title>" in xml


def test_config_message_carries_config_sh_between_markers():
    """What a warm guest reads on its control line: BEGIN, base64 lines no longer
    than a tty line, END; decoding gives config.sh back byte for byte."""
    import base64

    from zund.runtimes.microvm.init import CONFIG_BEGIN, CONFIG_END, config_message

    config_sh = initramfs.container_config(["sh", "-c", "echo 'é' $X"], ["X=a\nb"] * 50,
                                           "/w", "h")
    lines = config_message(config_sh).decode().split("\n")
    assert lines[0] == CONFIG_BEGIN and lines[-2] == CONFIG_END and lines[-1] == ""
    body = lines[1:-2]
    assert all(len(line) <= 76 for line in body)
    assert base64.b64decode("".join(body)).decode() == config_sh


def test_ready_marker_counts_only_as_a_line_of_its_own():
    """Only the init's marker line asks for a config, not the text inside output."""
    from zund.runtimes.libvirt import _asks_config

    assert _asks_config("[  1.0] booting\r\nZUND-CONFIG-READY\r\n")
    assert not _asks_config("O 100 ZUND-CONFIG-READY\r\n")
    assert not _asks_config("")


def test_console_parsing_drops_kernel_noise_and_splits_streams():
    """Only tagged lines between the markers count; each boot is a run."""
    text = ("SeaBIOS\r\n[    0.1] Linux version\r\nZUND-OUTPUT-BEGIN\r\n"
            "O 100 hello\r\n[    1.0] noise\r\nE 101 oops\r\nZUND-EXIT-CODE: 3\r\n"
            "[    2.0] reboot: Power down\r\nZUND-START-ERROR: exec: \"x\": not found\r\n"
            "ZUND-OUTPUT-BEGIN\r\nO 200 again\r\n")
    runs = parse_console(text)
    assert [(ln.stream, ln.text) for ln in runs[0].lines] == [("stdout", "hello\n"),
                                                                ("stderr", "oops\n")]
    assert runs[0].exit_code == 3
    assert runs[1].start_error and not runs[1].began and runs[1].exit_code == 127
    assert runs[2].exit_code is None and runs[2].lines[0].text == "again\n"


def test_render_logs_streams_tail_timestamps():
    """stdout/stderr selection, tail and RFC 3339 timestamps."""
    from zund.runtimes.libvirt import render_logs

    runs = parse_console("ZUND-OUTPUT-BEGIN\nO 0 a\nE 0 b\nO 1 c\nZUND-EXIT-CODE: 0\n")
    assert render_logs(runs, True, False, False, None) == "a\nc\n"
    assert render_logs(runs, False, True, False, None) == "b\n"
    assert render_logs(runs, True, True, False, 1) == "c\n"
    assert render_logs(runs, True, False, True, None).splitlines()[1] == \
        "1970-01-01T00:00:01.000000000Z c"


def test_resources_map_to_the_guest():
    """cpu rounds up to whole vCPUs; memory has a floor."""
    from zund.runtimes.libvirt import guest_memory_mb, guest_vcpus

    assert guest_vcpus(0.5, 1) == 1 and guest_vcpus(1.5, 1) == 2 and guest_vcpus(None, 3) == 3
    assert guest_memory_mb(None, 256, 96) == 256 and guest_memory_mb(4, 256, 96) == 96


def test_image_initramfs_path_changes_with_image_and_busybox(tmp_path):
    """The cached initramfs is addressed by image id and busybox content, under images_path."""
    a = initramfs.image_initramfs_path(str(tmp_path), "sha256:aa", b"BUSYBOX")
    assert a.startswith(str(tmp_path) + "/") and a.endswith(".cpio.gz")
    assert a == initramfs.image_initramfs_path(str(tmp_path), "sha256:aa", b"BUSYBOX")
    assert a != initramfs.image_initramfs_path(str(tmp_path), "sha256:bb", b"BUSYBOX")
    assert a != initramfs.image_initramfs_path(str(tmp_path), "sha256:aa", b"OTHER")


def test_kvm_usable_is_false_for_a_non_kvm_device(tmp_path):
    """A path that is not /dev/kvm is not usable."""
    from zund.runtimes.libvirt import kvm_usable

    assert kvm_usable(str(tmp_path / "nope")) is False
    assert kvm_usable("/dev/null") is False


def test_runtime_busybox_digest_follows_the_file_and_names_the_same_cache_path(tmp_path):
    """The runtime keeps busybox's digest between creates but notices a replaced
    busybox; the cache path from the digest is the one from the bytes."""
    from twisted.internet import defer, task

    from zund.runtimes.libvirt import LibvirtConfig, LibvirtRuntime

    bb = tmp_path / "busybox"
    bb.write_bytes(b"BUSYBOX-1")
    rt = LibvirtRuntime(LibvirtConfig(busybox_path=str(bb)), "n",
                        lambda fn: defer.maybeDeferred(fn), task.Clock())
    first = rt._busybox_digest()
    assert (initramfs.image_initramfs_path_digest(str(tmp_path), "sha256:aa", first)
            == initramfs.image_initramfs_path(str(tmp_path), "sha256:aa", b"BUSYBOX-1"))
    assert rt._busybox_digest() == first
    bb.write_bytes(b"BUSYBOX-2, a new build")
    assert rt._busybox_digest() != first


def test_one_warm_guest_serves_the_most_frequent_recent_shape_without_thrashing():
    """With one guest: one create of another shape keeps the pool's shape;
    alternating shapes keep it too (no guest booted and retired per create); a
    shape that becomes the most frequent takes over; without a current shape, the
    latest of the most frequent wins."""
    from zund.runtimes.libvirt import plan_pool

    a, b, c = ("img", 1, 128), ("img", 1, 256), ("other", 2, 128)
    assert plan_pool([], 1, {}) == {} and plan_pool([], 1, {a: 1}) == {a: 1}
    assert plan_pool([a], 1, {}) == {a: 1}
    assert plan_pool([a, b], 1, {a: 1}) == {a: 1}
    assert plan_pool([a, b, a, b, a, b], 1, {a: 1}) == {a: 1}
    assert plan_pool([a, b, b], 1, {a: 1}) == {b: 1}
    assert plan_pool([a, b, c], 1, {}) == {c: 1}
    assert plan_pool([a, a, b, c, c], 1, {b: 1}) == {c: 1}  # current not among the top
    assert plan_pool([a, b], 0, {a: 1}) == {}


def test_warm_guests_are_shared_among_shapes_in_proportion_to_their_creates():
    """Several guests go to the recent shapes by how often each came (D'Hondt):
    two alternating shapes get one each; a shape with three times another's
    creates gets three of four guests; a rare shape gets none while a frequent one
    could use the guest more; ties keep the guests where they are."""
    from zund.runtimes.libvirt import plan_pool

    a, b, c = ("img", 1, 128), ("img", 1, 256), ("other", 2, 128)
    assert plan_pool([a, b, a, b], 2, {}) == {a: 1, b: 1}
    assert plan_pool([a, a, a, b, a, a, a, b], 4, {}) == {a: 3, b: 1}
    assert plan_pool([a, a, a, a, a, a, a, c], 2, {}) == {a: 2}
    assert plan_pool([a, a, b], 3, {}) == {a: 2, b: 1}
    # a: 4 creates, b: 2 -> a's second guest (4/2) ties b's first (2/1): kept as is
    assert plan_pool([a, b, a, a, b, a], 2, {a: 1, b: 1}) == {a: 1, b: 1}
    assert plan_pool([a, b, a, a, b, a], 2, {a: 2}) == {a: 2}
    assert sum(plan_pool([a, b, c, a, b, c, a, b], 5, {}).values()) == 5


def test_every_runtime_class_declares_iruntime():
    """The classes the service loads as runtimes declare IRuntime (what the
    runtime contract's first case checks on a live instance)."""
    from zund.runtimes.base import IRuntime
    from zund.runtimes.docker import DockerRuntime
    from zund.runtimes.libvirt import LibvirtRuntime

    assert IRuntime.implementedBy(LibvirtRuntime)
    assert IRuntime.implementedBy(DockerRuntime)
