"""cProfile for a bench's ``zund serve`` (``bench/api_cost.py --profile-out X.prof``,
``bench/placement_real.py --profile-out X.prof``: every node, one file each).

On the node's PYTHONPATH only when that bench asks for it: with
``ZUND_BENCH_CPROFILE=FILE`` in the environment, SIGUSR1 starts profiling the main
(reactor) thread's CPU time and SIGUSR2 stops and writes FILE (``pstats`` format). Other
threads (the store's) are not profiled: py-spy (``--profile-out X.raw``) sees them.
"""

import os

_out = os.environ.get("ZUND_BENCH_CPROFILE")
if _out:
    # several nodes profiled at once: "%p" in the name is each one's PID
    _out = _out.replace("%p", str(os.getpid()))
    import cProfile
    import signal
    import time

    # the reactor thread's CPU time, not wall time (waits for the client, the
    # store thread and the scheduler are not the node's cost)
    _prof = cProfile.Profile(time.thread_time)

    def _start(_sig, _frame):
        _prof.enable()

    def _stop(_sig, _frame):
        _prof.disable()
        _prof.dump_stats(_out + ".part")
        os.replace(_out + ".part", _out)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
