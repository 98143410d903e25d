import socket

from oslo_config import cfg

default_opts = [
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="<hostname>",
               help="Name of this node. Must be unique in the cluster; it is the "
                    "`host` of every container this node runs."),
    cfg.StrOpt("state_path", default="/var/lib/zund",
               help="Directory for zund's state: the SQLite store, micro-VM images, "
                    "console logs."),
    cfg.StrOpt("auth_strategy", default="noauth", choices=["noauth", "keystone"],
               help="How API callers are authenticated."),
    cfg.StrOpt("default_runtime", default="runc",
               help="Runtime used when a create request names none."),
    cfg.ListOpt("enabled_runtimes", default=["docker"],
                help="Runtime drivers (entry points `zund.runtimes`) this node loads."),
    cfg.FloatOpt("default_cpu", default=1.0, help="vCPUs of a container that asks for none."),
    cfg.FloatOpt("minimum_cpus", default=0.1, help="Smallest cpu a create may ask for."),
    cfg.FloatOpt("maximum_cpus", default=16.0, help="Largest cpu a create may ask for."),
    cfg.IntOpt("default_memory", default=512, help="MiB of a container that asks for none."),
    cfg.IntOpt("minimum_memory", default=4, help="MiB."),
    cfg.IntOpt("maximum_memory", default=8192, help="MiB."),
    cfg.IntOpt("default_disk", default=10, help="GiB."),
    cfg.IntOpt("minimum_disk", default=1, help="GiB."),
    cfg.IntOpt("maximum_disk", default=160, help="GiB."),
    cfg.StrOpt("default_availability_zone", default="nova",
               help="Availability zone of this node."),
    cfg.DictOpt("labels", default={},
                help="Labels of this node (key:value,...). Shown in /v1/hosts and matched "
                     "by the scheduler hint label:<key>=<value>."),
    cfg.IntOpt("sync_container_state_interval", default=60, min=1,
               help="Seconds between reconciliations of records with the runtime."),
    cfg.IntOpt("service_down_time", default=180,
               help="Seconds after which a silent node is reported down."),
    cfg.IntOpt("shutdown_timeout", default=30,
               help="Seconds SIGTERM waits for in-flight work before stopping anyway."),
    cfg.IntOpt("executor_threads", default=16, min=1,
               help="Threads for blocking runtime SDK calls."),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return [("DEFAULT", default_opts)]
