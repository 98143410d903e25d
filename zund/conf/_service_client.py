"""The options of an OpenStack service zund is a client of (``[glance]``,
``[neutron]``), registered the way OpenStack services do it: keystoneauth session
options (cafile, timeout...), auth options (a service user; leave ``auth_type``
unset for a noauth service) and adapter options (``service_type``,
``endpoint_override``, ``valid_interfaces``, ``region_name``), beside the group's
own options. With no ``endpoint_override`` the service is found in the Keystone
catalog of the configured auth.

keystoneauth's options are registered on a ``ConfigOpts`` when first needed
(:func:`register_client_opts`, called by :func:`configured` and
:func:`load_adapter`), not by ``make_conf``: importing keystoneauth loads requests
and urllib3, about 3 MB of a node that never talks to Glance or Neutron (issue 13
§5). A group none of whose values is set (no ``[group]`` section in the config
files, no ``OS_<GROUP>__*`` environment variable) is not configured, so such a
node never imports it. The sample config (:func:`list_opts`) lists them as before.
"""

from __future__ import annotations

import os
from typing import Any

from oslo_config import cfg

from zund.conf import groups

#: group name -> the default of its ``service_type`` option (set by ``register``)
_SERVICE_TYPES: dict[str, str] = {}


def register(conf: cfg.ConfigOpts, group: cfg.OptGroup, own_opts: list,
             service_type: str) -> None:
    """Register ``group`` (a fresh copy, see ``groups``) with ``own_opts``;
    keystoneauth's options (``service_type`` defaulting to ``service_type``) come
    with :func:`register_client_opts`."""
    groups.register_group(conf, group)
    conf.register_opts(own_opts, group=group.name)
    _SERVICE_TYPES[group.name] = service_type


def register_client_opts(conf: cfg.ConfigOpts, group: str) -> None:
    """Register keystoneauth's session, auth and adapter options on ``[group]``
    (once; options may be registered after the config was parsed: their values are
    read when used)."""
    if "auth_type" in conf[group]:
        return
    from keystoneauth1 import loading as ks_loading

    ks_loading.register_session_conf_options(conf, group)
    ks_loading.register_auth_conf_options(conf, group)
    ks_loading.register_adapter_conf_options(conf, group, include_deprecated=False)
    conf.set_default("service_type", _SERVICE_TYPES[group], group=group)


def _mentioned(conf: cfg.ConfigOpts, group: str) -> bool:
    """Whether the parsed config files have a ``[group]`` section or the environment
    an ``OS_<GROUP>__<OPTION>`` variable (oslo.config's environment source)."""
    if group in conf.list_all_sections():
        return True
    prefix = f"OS_{group.upper()}__"
    return any(k.startswith(prefix) for k in os.environ)


def configured(conf: cfg.ConfigOpts, group: str) -> bool:
    """Whether ``[group]`` names a service to reach: ``endpoint_override`` or
    ``auth_type`` set. Registers keystoneauth's options only when ``[group]`` has a
    value somewhere (see the module docstring)."""
    if "auth_type" not in conf[group] and not _mentioned(conf, group):
        return False
    register_client_opts(conf, group)
    g = conf[group]
    return bool(g.endpoint_override or g.auth_type)


def list_opts(group: cfg.OptGroup, own_opts: list) -> list:
    """``[(name, options)]`` of ``group`` for sample-config generation."""
    from keystoneauth1 import loading as ks_loading

    return [(group.name, own_opts + ks_loading.get_session_conf_options()
             + ks_loading.get_auth_common_conf_options()
             + ks_loading.get_adapter_conf_options(include_deprecated=False))]


def load_adapter(conf: cfg.ConfigOpts, group: str) -> Any:
    """The keystoneauth adapter of ``[group]``: its session, its service-user auth
    (none when ``auth_type`` is unset) and its adapter options."""
    from keystoneauth1 import loading as ks_loading

    register_client_opts(conf, group)
    auth = None
    if conf[group].auth_type:
        auth = ks_loading.load_auth_from_conf_options(conf, group)
    session = ks_loading.load_session_from_conf_options(conf, group, auth=auth)
    return ks_loading.load_adapter_from_conf_options(conf, group, session=session)
