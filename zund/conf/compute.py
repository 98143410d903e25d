from oslo_config import cfg

from zund.conf import groups

compute_group = cfg.OptGroup("compute", title="This node's containers and capacity")

compute_opts = [
    cfg.StrOpt("unique_container_name_scope", default="", choices=["", "project", "global"],
               help="Where container names must be unique (case-insensitive); "
                    "empty = names need not be unique."),
    cfg.IntOpt("total_cpus", default=0, min=0,
               help="vCPUs this node offers; 0 = the host's logical CPU count."),
    cfg.IntOpt("total_memory_mb", default=0, min=0,
               help="MiB this node offers; 0 = the host's MemTotal."),
    cfg.IntOpt("total_disk_gb", default=0, min=0,
               help="GiB this node offers; 0 = size of the state_path filesystem."),
    cfg.IntOpt("reserved_host_cpus", default=0, min=0,
               help="vCPUs kept back for the host; not offered to containers."),
    cfg.IntOpt("reserved_host_memory_mb", default=512, min=0,
               help="MiB kept back for the host; not offered to containers."),
    cfg.IntOpt("reserved_host_disk_mb", default=0, min=0,
               help="MiB of disk kept back for the host."),
    cfg.FloatOpt("cpu_allocation_ratio", default=16.0, min=0.0,
                 help="Overcommit: allocatable vCPUs = (total - reserved) x this."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.5, min=0.0,
                 help="Overcommit: allocatable MiB = (total - reserved) x this."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.0,
                 help="Overcommit: allocatable GiB = (total - reserved) x this."),
    cfg.FloatOpt("reserve_disk_for_image", default=0.2, min=0.0, max=1.0,
                 help="Fraction of the disk kept back for images."),
    cfg.StrOpt("image_pull_policy", default="ifnotpresent",
               choices=["ifnotpresent", "always", "never"],
               help="Default pull policy for create requests that give none."),
]


def register_opts(conf):
    groups.register_group(conf, compute_group)
    conf.register_opts(compute_opts, group=compute_group.name)


def list_opts():
    return [(compute_group.name, compute_opts)]
