"""oslo.config option definitions, one module per group.

``make_conf()`` builds a fresh ``ConfigOpts`` with every option registered. Only
``zund/cmd`` and ``zund/service.py`` read it; components get plain frozen values.
"""

from __future__ import annotations

import importlib
import os

from oslo_config import cfg

#: read when it exists and no ``--config-file`` is given
DEFAULT_CONFIG = "/etc/zund/zund.conf"

#: modules under zund.conf that define options; each has register_opts/list_opts.
_MODULES = ("default", "api", "noauth", "docker", "libvirt", "compute", "gossip", "peer", "placement", "listeners", "quota",
            "cluster", "glance", "observability", "nova_api", "network", "neutron")


def _modules():
    mods = []
    for name in _MODULES:
        try:
            mods.append(importlib.import_module(f"zund.conf.{name}"))
        except ModuleNotFoundError as e:  # a group still being written
            if e.name != f"zund.conf.{name}":
                raise
    return mods


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for mod in _modules():
        mod.register_opts(conf)
    return conf


def list_opts():
    """Entry point for ``oslo-config-generator`` (namespace ``zund``)."""
    out = []
    for mod in _modules():
        out.extend(mod.list_opts())
    return out


def load_conf(argv: list[str], description: str) -> cfg.ConfigOpts:
    """A ``ConfigOpts`` parsed from argv (``--config-file``, ``--config-dir``,
    ``--debug``), for the command line tools."""
    conf = make_conf()
    default_files = [DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else []
    conf.register_cli_opt(cfg.BoolOpt("debug", default=False, help="Log debug events."))
    conf(argv, project="zund", prog="zund", description=description,
         default_config_files=default_files)
    return conf
