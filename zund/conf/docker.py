from oslo_config import cfg

from zund.conf import groups

docker_group = cfg.OptGroup("docker", title="Docker runtime")

docker_opts = [
    cfg.StrOpt("api_url", default="unix:///var/run/docker.sock",
               help="Docker engine API endpoint."),
    cfg.StrOpt("docker_remote_api_version", default="auto",
               help="Engine API version, or `auto`."),
    cfg.IntOpt("default_timeout", default=60, help="Seconds per engine API call."),
    cfg.IntOpt("execute_timeout", default=60, help="Seconds a non-interactive exec may run."),
    cfg.StrOpt("network_mode", default="",
               help="Network mode of created containers (e.g. bridge, host, none); "
                    "empty = the engine's default."),
    cfg.IntOpt("max_workers", default=16, min=1,
               help="Threads for blocking docker SDK calls."),
]


def register_opts(conf):
    groups.register_group(conf, docker_group)
    conf.register_opts(docker_opts, group=docker_group.name)


def list_opts():
    return [(docker_group.name, docker_opts)]
