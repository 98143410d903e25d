"""``[glance]``: where the Glance image driver finds Glance, and the node's
default image driver.

Glance is reached through a keystoneauth adapter, registered the way OpenStack
services do it: session options (cafile, timeout...), auth options (a service
user; leave ``auth_type`` unset for a noauth Glance) and adapter options
(``service_type`` = image, ``endpoint_override``, ``valid_interfaces``,
``region_name``). With no ``endpoint_override`` Glance is found in the Keystone
catalog of the configured auth.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from zund.conf import groups

GROUP = "glance"

glance_group = cfg.OptGroup(GROUP, title="Glance image driver")

glance_opts = [
    cfg.StrOpt("default_image_driver", default="docker", choices=("docker", "glance"),
               help="Image driver of an image pull or search that names none."),
    cfg.StrOpt("cache_dir", default="",
               help="Where Glance archives are downloaded before `docker load` "
                    "(empty: <state_path>/glance-cache)."),
    cfg.IntOpt("max_workers", default=4, min=1,
               help="Threads for blocking Glance calls."),
]


def _adapter_opts():
    return ks_loading.get_adapter_conf_options(include_deprecated=False)


def register_opts(conf):
    groups.register_group(conf, glance_group)
    conf.register_opts(glance_opts, group=glance_group.name)
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)
    ks_loading.register_adapter_conf_options(conf, GROUP, include_deprecated=False)
    conf.set_default("service_type", "image", group=GROUP)


def list_opts():
    return [(GROUP, glance_opts + ks_loading.get_session_conf_options()
             + ks_loading.get_auth_common_conf_options() + _adapter_opts())]
