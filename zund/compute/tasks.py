"""Background work of the compute manager, and the per-container locks.

A create, a delete or a lifecycle action answers the caller as soon as the task is
claimed; the work itself runs in the background. ``BackgroundTasks`` keeps every
such Deferred until it ends, so ``stopService`` can wait for them (bounded by a
timeout on the injected clock). ``ContainerLocks`` serialises the work on one
container: a task holds its container's lock for its whole run.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


class BackgroundTasks:
    """Spawned coroutines that must be waited for on stop.

    ``clock``: ``IReactorTime`` (the drain timeout runs on it). A failure of a task
    is logged (``compute.task_failed``) and never reaches the reactor.
    """

    def __init__(self, clock):
        self._clock = clock
        self._inflight: set[defer.Deferred] = set()

    def __len__(self) -> int:
        return len(self._inflight)

    def spawn(self, coro, what: str) -> defer.Deferred:
        """Run ``coro`` in the background; the returned Deferred fires (with None on
        failure) when it ends."""
        d = defer.Deferred.fromCoroutine(coro)
        self._inflight.add(d)

        def done(result):
            self._inflight.discard(d)
            return result

        def failed(f):
            log.failure("compute.task_failed", f, task=what)

        d.addBoth(done)
        d.addErrback(failed)
        return d

    async def drain(self, timeout_s: float) -> None:
        """Wait for the tasks in flight now, at most ``timeout_s`` seconds."""
        pending = list(self._inflight)
        if not pending:
            return
        log.info("compute.draining", count=len(pending))
        done = defer.DeferredList(pending, consumeErrors=True)
        timeout = self._clock.callLater(timeout_s, done.cancel)
        try:
            await done
        except defer.CancelledError:
            log.warn("compute.drain_timeout", count=len(self._inflight))
        finally:
            if timeout.active():
                timeout.cancel()


class ContainerLocks:
    """One ``DeferredLock`` per container uuid (``async with locks[uuid]:``)."""

    def __init__(self):
        self._locks: dict[str, defer.DeferredLock] = {}

    def __getitem__(self, uuid: str) -> defer.DeferredLock:
        lock = self._locks.get(uuid)
        if lock is None:
            lock = self._locks[uuid] = defer.DeferredLock()
        return lock

    def forget(self, uuid: str) -> None:
        """Drop the lock of a container that no longer exists."""
        self._locks.pop(uuid, None)
