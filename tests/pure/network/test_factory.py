"""Pure tier, issue 16: what ``zund.network.factory.build`` puts in the node's
service tree for each ``[network] driver`` (nothing is started or contacted)."""

from __future__ import annotations

from twisted.application import service
from twisted.internet.task import Clock

from zund.conf import make_conf
from zund.network import factory


def _conf(driver: str):
    conf = make_conf()
    conf([], project="zund", default_config_files=[])
    conf.set_override("driver", driver, group="network")
    return conf


def test_neutron_backend_is_a_child_service_so_its_pool_and_port_reload_start():
    """driver = neutron: the backend is among the services the tree starts (its
    thread pool only runs once started: left out, every Neutron call would wait)."""
    parts = factory.build(_conf("neutron"), Clock(), "node-1", view=None, client=None,
                          state_path=None, wire_docker=False, local_ip="127.0.0.1")
    assert service.IService.providedBy(parts.backend)
    assert parts.backend in parts.services
    assert parts.node.backend is parts.backend


def test_driver_none_builds_no_network_parts():
    """driver = none: no backend, no services."""
    parts = factory.build(_conf("none"), Clock(), "node-1", view=None, client=None,
                          state_path=None, wire_docker=False, local_ip="127.0.0.1")
    assert (parts.backend, parts.node, parts.services) == (None, None, ())
