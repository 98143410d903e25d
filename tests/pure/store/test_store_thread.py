"""The store's own write thread (issue 13: half deferToThreadPool's CPU per call):
calls run in queue order on one other thread, each Deferred fires on the reactor
with the call's result or its exception, and stop finishes what was queued."""

import queue
import threading

from zund.store import _StoreThread


class QueuedReactor:
    """``callFromThread`` as a queue the test drains on its own (reactor) thread."""

    def __init__(self):
        self.calls = queue.SimpleQueue()

    def callFromThread(self, fn, *a):
        self.calls.put((fn, a))

    def drain(self, n: int) -> None:
        for _ in range(n):
            fn, a = self.calls.get(timeout=10)
            fn(*a)


def test_store_thread_answers_in_order_with_results_and_errors_on_the_reactor():
    """Results and exceptions come back in call order, run off the calling thread."""
    reactor = QueuedReactor()
    worker = _StoreThread(reactor)
    threads, got = [], []

    def job(i):
        threads.append(threading.current_thread())
        if i == 2:
            raise ValueError("bad 2")
        return i * 10

    ds = [worker.run(job, i) for i in range(4)]
    for d in ds:
        d.addCallbacks(got.append, lambda f: got.append(f.value))
    reactor.drain(4)
    worker.stop()
    assert got[:2] + got[3:] == [0, 10, 30]
    assert isinstance(got[2], ValueError) and str(got[2]) == "bad 2"
    assert len(set(threads)) == 1 and threads[0] is not threading.current_thread()


def test_store_thread_stop_runs_what_was_queued_first():
    """stop() returns after every queued call ran; the thread is gone."""
    reactor = QueuedReactor()
    worker = _StoreThread(reactor)
    done = []
    for i in range(5):
        worker.run(done.append, i)
    worker.stop()
    assert done == [0, 1, 2, 3, 4]
    assert not worker._thread.is_alive()
