"""Entry points of the ``zund.runtimes`` group.

Each factory takes the node's ConfigOpts and reactor and returns
``(runtime, close)`` where ``close`` is an optional callable run after the
runtime closed (e.g. stopping its thread pool). Only ``zund/service.py`` calls them.
"""

from __future__ import annotations

from zund.runtimes.base import MissingRuntime


def docker(conf, reactor):
    from zund.runtimes.docker import DockerConfig, DockerRuntime
    from zund.runtimes.executor import make_run_blocking

    d = conf.docker
    run_blocking, pool = make_run_blocking(reactor, d.max_workers, name="zund-docker")
    pool.start()  # factories run during NodeService start-up, never at import
    cfg = DockerConfig(
        api_url=d.api_url, api_version=d.docker_remote_api_version,
        default_timeout_s=float(d.default_timeout), execute_timeout_s=float(d.execute_timeout),
        network_mode=d.network_mode,
    )
    return DockerRuntime(cfg, conf.host, run_blocking), pool.stop


def fake(conf, reactor):
    from zund.runtimes.fake import FakeRuntime

    return FakeRuntime(conf.host, clock=reactor), None


#: API name of the micro-VM runtime (``zund.runtimes.libvirt.RUNTIME_NAME``; repeated
#: here because that module cannot be imported without libvirt-python).
MICROVM_NAME = "microvm"


def libvirt(conf, reactor):
    from zund.runtimes.executor import make_run_blocking

    try:
        from zund.runtimes.libvirt import LibvirtConfig, LibvirtRuntime
    except ImportError as e:
        # A missing optional package is a runtime that is not available on this
        # host, like an unreachable libvirtd: dropped at start with one line.
        return MissingRuntime(MICROVM_NAME, (
            f"libvirt-python is not installed ({e}); install the extra with "
            "`pip install 'zund[libvirt]'`")), None

    run_blocking, pool = make_run_blocking(reactor, conf.libvirt.max_workers,
                                           name="zund-libvirt")
    # minthreads=0: starting the pool creates no thread until the first call.
    pool.start()
    runtime = LibvirtRuntime(LibvirtConfig.from_conf(conf), conf.host, run_blocking, reactor)
    return runtime, pool.stop
