"""The shared test harness (tests/conftest.py) itself."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_unhandled_errors_fail_the_test(tmp_path):
    """An unhandled Deferred error or callLater exception fails the test; the marker allows it."""
    (tmp_path / "test_guard.py").write_text(textwrap.dedent("""
        import pytest, pytest_twisted
        from twisted.internet import defer, reactor
        from twisted.logger import globalLogPublisher

        def test_unhandled_deferred():
            d = defer.Deferred()
            d.errback(ValueError("boom"))
            del d

        @pytest_twisted.ensureDeferred
        async def test_calllater_error():
            # Wait until the reactor has logged the callLater's error (the harness's
            # guard observed it first: it subscribed earlier), with a deadline.
            logged = defer.Deferred()

            def observer(event):
                if event.get("log_failure") is not None and not logged.called:
                    logged.callback(None)

            globalLogPublisher.addObserver(observer)
            try:
                reactor.callLater(0, lambda: 1 / 0)
                await logged.addTimeout(10, reactor)
            finally:
                globalLogPublisher.removeObserver(observer)

        @pytest.mark.allow_logged_errors
        def test_allowed():
            d = defer.Deferred()
            d.errback(ValueError("boom"))
            del d

        def test_clean():
            pass
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_guard.py")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert "2 errors" in out and "failed" not in out, out
    assert "ERROR" in out and "test_unhandled_deferred" in out and "test_calllater_error" in out
