"""The micro-VM runtime's boot wait (LibvirtRuntime._wait_for_begin): it reads the
guest's console every BOOT_POLL_S and asks libvirt whether the guest still runs
every BOOT_LIVENESS_S. A fake libvirt connection and a task.Clock; no VM."""

from __future__ import annotations

from twisted.internet import defer, task

from zund.common import errors
from zund.runtimes import libvirt as lv

UUID = "6f1c2a9e-3b7d-4e8a-9c51-0d2e4f6a8b10"


class FakeDomain:
    def __init__(self):
        self.active = True

    def isActive(self):
        return self.active

    def destroy(self):
        self.active = False


class FakeConn:
    def __init__(self, dom):
        self.dom = dom

    def lookupByName(self, name):
        return self.dom


def _runtime(tmp_path):
    clock = task.Clock()
    rt = lv.LibvirtRuntime(lv.LibvirtConfig(console_path=str(tmp_path)), "node-1",
                           lambda fn: defer.maybeDeferred(fn), clock)
    dom = FakeDomain()
    rt._conn = FakeConn(dom)
    return rt, dom, clock


def _advance(clock, seconds):
    for _ in range(int(round(seconds / lv.BOOT_POLL_S)) + 1):
        clock.advance(lv.BOOT_POLL_S)


def test_marker_printed_just_before_the_guest_ended_counts_as_started(tmp_path):
    """A guest that prints ZUND-OUTPUT-BEGIN and ends between two polls (a quick
    command with auto_remove) started: liveness is read before the console."""
    rt, dom, clock = _runtime(tmp_path)
    d = defer.Deferred.fromCoroutine(rt._wait_for_begin(UUID, 0, 60.0))
    _advance(clock, 0.1)
    assert not d.called
    with open(rt._log_path(UUID), "w") as f:
        f.write("ZUND-OUTPUT-BEGIN\r\n")
    dom.active = False
    _advance(clock, lv.BOOT_LIVENESS_S)
    assert d.called and d.result is None


def test_guest_ending_without_the_marker_fails_within_one_liveness_interval(tmp_path):
    """A guest that powers off before its command starts is a RuntimeFailure naming
    its last console lines, reported within BOOT_LIVENESS_S (not at the timeout)."""
    rt, dom, clock = _runtime(tmp_path)
    d = defer.Deferred.fromCoroutine(rt._wait_for_begin(UUID, 0, 60.0))
    with open(rt._log_path(UUID), "w") as f:
        f.write("Kernel panic - not syncing: no init\r\n")
    dom.active = False
    _advance(clock, lv.BOOT_LIVENESS_S)
    failures = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(errors.RuntimeFailure)
    assert "stopped before the command started" in str(failures[0].value)
    assert "no init" in str(failures[0].value)
