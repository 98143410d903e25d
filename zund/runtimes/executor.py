"""Run blocking library calls (docker SDK, libvirt) off the reactor thread.

Runtimes never call a blocking SDK directly: they receive a ``run_blocking(fn,
*args) -> Deferred`` callable. In production it is bound to a bounded Twisted
``ThreadPool``; unit tests may pass :func:`run_blocking_sync`, which runs the
call inline and returns an already-fired Deferred.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

RunBlocking = Callable[..., defer.Deferred]


def make_run_blocking(reactor, max_workers: int,
                      name: str = "zund-blocking") -> tuple[RunBlocking, ThreadPool]:
    """Return ``(run_blocking, pool)``.

    ``pool`` is a not-yet-started :class:`ThreadPool` with at most
    ``max_workers`` threads: the owner calls ``pool.start()`` when its service
    starts and ``pool.stop()`` (which joins the threads) when it stops. Calls
    made before ``start()`` queue until then; calls beyond ``max_workers`` queue
    in the pool, so the number of threads stays bounded.
    """
    if max_workers < 1:
        raise ValueError("max_workers must be >= 1")
    pool = ThreadPool(minthreads=0, maxthreads=max_workers, name=name)

    def run_blocking(fn: Callable[..., Any], *args, **kwargs) -> defer.Deferred:
        return threads.deferToThreadPool(reactor, pool, fn, *args, **kwargs)

    return run_blocking, pool


def run_blocking_sync(fn: Callable[..., Any], *args, **kwargs) -> defer.Deferred:
    """Synchronous stand-in for unit tests: runs ``fn`` now, returns a fired Deferred."""
    return defer.maybeDeferred(fn, *args, **kwargs)


class TrackedCalls:
    """A runtime's blocking calls: refused once closing, and awaited on close.

    ``await calls(fn)`` runs ``fn`` through ``run_blocking``; ``await calls.drain()``
    stops new calls (RuntimeUnavailable) and waits for those in flight.
    """

    def __init__(self, run_blocking: RunBlocking, runtime_name: str):
        self._run_blocking = run_blocking
        self._runtime_name = runtime_name
        self._in_flight: set[defer.Deferred] = set()
        self.closing = False

    async def __call__(self, fn: Callable[[], Any]) -> Any:
        if self.closing:
            from zund.common import errors

            raise errors.RuntimeUnavailable(runtime=self._runtime_name,
                                            reason="runtime is closing")
        d = self._run_blocking(fn)
        self._in_flight.add(d)

        def _done(result):
            self._in_flight.discard(d)
            return result

        d.addBoth(_done)
        return await d

    async def drain(self) -> None:
        self.closing = True
        pending = list(self._in_flight)
        if pending:
            await defer.DeferredList(pending, consumeErrors=True)
