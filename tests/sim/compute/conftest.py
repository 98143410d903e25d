import pytest
from twisted.internet import defer


def run_sync(coro):
    """Drive a coroutine whose awaits all complete synchronously; return its result."""
    d = defer.Deferred.fromCoroutine(coro)
    results = []
    d.addBoth(results.append)
    assert results, "coroutine did not complete synchronously"
    r = results[0]
    if hasattr(r, "raiseException"):
        r.raiseException()
    return r


def sync_blocking(fn, *a, **kw):
    return defer.maybeDeferred(fn, *a, **kw)


@pytest.fixture
def store(tmp_path):
    from zund.store import Store

    s = Store(str(tmp_path / "zund.sqlite"), run_blocking=sync_blocking)
    run_sync(s.open())
    yield s
    run_sync(s.close())
