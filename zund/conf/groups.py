"""Option groups are registered per ``ConfigOpts``.

oslo.config keeps a *shallow* copy of a registered ``OptGroup``, so the group's table
of options is shared by every ``ConfigOpts`` the same group object was registered
with. Options registered later on one of them (keystoneauth registers an auth
plugin's options, e.g. a required ``auth_url``, when ``auth_type`` is read) would
then appear in every other one. Each registration therefore gets its own group.
"""

from oslo_config import cfg


def register_group(conf: cfg.ConfigOpts, group: cfg.OptGroup) -> None:
    """Register a fresh copy of ``group`` (same name, title and help) on ``conf``."""
    conf.register_group(cfg.OptGroup(group.name, title=group.title, help=group.help))
