"""The options of an OpenStack service zund is a client of (``[glance]``,
``[neutron]``), registered the way OpenStack services do it: keystoneauth session
options (cafile, timeout...), auth options (a service user; leave ``auth_type``
unset for a noauth service) and adapter options (``service_type``,
``endpoint_override``, ``valid_interfaces``, ``region_name``), beside the group's
own options. With no ``endpoint_override`` the service is found in the Keystone
catalog of the configured auth."""

from __future__ import annotations

from typing import Any

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from zund.conf import groups


def register(conf: cfg.ConfigOpts, group: cfg.OptGroup, own_opts: list,
             service_type: str) -> None:
    """Register ``group`` (a fresh copy, see ``groups``) with ``own_opts`` and the
    keystoneauth session, auth and adapter options; ``service_type`` its default."""
    groups.register_group(conf, group)
    conf.register_opts(own_opts, group=group.name)
    ks_loading.register_session_conf_options(conf, group.name)
    ks_loading.register_auth_conf_options(conf, group.name)
    ks_loading.register_adapter_conf_options(conf, group.name, include_deprecated=False)
    conf.set_default("service_type", service_type, group=group.name)


def list_opts(group: cfg.OptGroup, own_opts: list) -> list:
    """``[(name, options)]`` of ``group`` for sample-config generation."""
    return [(group.name, own_opts + ks_loading.get_session_conf_options()
             + ks_loading.get_auth_common_conf_options()
             + ks_loading.get_adapter_conf_options(include_deprecated=False))]


def load_adapter(conf: cfg.ConfigOpts, group: str) -> Any:
    """The keystoneauth adapter of ``[group]``: its session, its service-user auth
    (none when ``auth_type`` is unset) and its adapter options."""
    auth = None
    if conf[group].auth_type:
        auth = ks_loading.load_auth_from_conf_options(conf, group)
    session = ks_loading.load_session_from_conf_options(conf, group, auth=auth)
    return ks_loading.load_adapter_from_conf_options(conf, group, session=session)
