"""``[glance]``: where the Glance image driver finds Glance, and the node's
default image driver.

Glance is reached through a keystoneauth adapter, registered the way OpenStack
services do it: session options (cafile, timeout...), auth options (a service
user; leave ``auth_type`` unset for a noauth Glance) and adapter options
(``service_type`` = image, ``endpoint_override``, ``valid_interfaces``,
``region_name``). With no ``endpoint_override`` Glance is found in the Keystone
catalog of the configured auth.
"""

from oslo_config import cfg

from zund.conf import _service_client

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


def register_opts(conf):
    _service_client.register(conf, glance_group, glance_opts, "image")


def list_opts():
    return _service_client.list_opts(glance_group, glance_opts)
