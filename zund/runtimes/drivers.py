"""Entry points of the ``zund.runtimes`` group.

Each factory takes the node's ConfigOpts and reactor and returns
``(runtime, close)`` where ``close`` is an optional callable run after the
runtime closed (e.g. stopping its thread pool). Only ``zund/service.py`` calls them.
"""

from __future__ import annotations


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


def libvirt(conf, reactor):
    from zund.runtimes.executor import make_run_blocking
    from zund.runtimes.libvirt import LibvirtConfig, LibvirtRuntime

    run_blocking, pool = make_run_blocking(reactor, conf.libvirt.max_workers,
                                           name="zund-libvirt")
    # minthreads=0: starting the pool creates no thread until the first call.
    pool.start()
    runtime = LibvirtRuntime(LibvirtConfig.from_conf(conf), conf.host, run_blocking, reactor)
    return runtime, pool.stop
