"""Run by test_libvirt_warm_pool.py as a process to SIGKILL: opens a micro-VM
runtime with a warm pool of one, runs a long-running container in a claimed warm
guest, waits until the pool is warm again and prints ``READY <uuid>``; then it
waits to be killed.

    python warm_pool_crash_helper.py STATE_DIR NODE URI KERNEL
"""

import sys
import uuid as uuidlib

from twisted.internet import defer, task

from tests.support.libvirt_guests import make_config, wait_warm
from tests.support.runtime_contract import LONG_RUNNER, TEST_IMAGE
from zund.runtimes.base import ContainerSpec
from zund.runtimes.executor import make_run_blocking
from zund.runtimes.libvirt import LibvirtRuntime


async def main(reactor, state_dir, node, uri, kernel):
    run_blocking, pool = make_run_blocking(reactor, 4)
    pool.start()
    rt = LibvirtRuntime(make_config(state_dir, uri=uri, kernel_path=kernel, warm_pool_size=1),
                        node, run_blocking, reactor)
    await rt.open()

    def spec(command):
        return ContainerSpec(uuid=str(uuidlib.uuid4()), node=node, project_id="crash",
                             image=TEST_IMAGE, command=command)
    shape = spec(("true",))
    await rt.create(shape)  # cold: it names the shape the pool warms
    await rt.remove(shape.uuid, True)
    await wait_warm(rt)
    victim = spec(LONG_RUNNER)
    await rt.create(victim)
    await rt.start(victim.uuid)
    await wait_warm(rt)
    print("READY", victim.uuid, flush=True)
    while True:
        await task.deferLater(reactor, 3600, lambda: None)


if __name__ == "__main__":
    args = sys.argv[1:5]
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *args)))
