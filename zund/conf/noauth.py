from oslo_config import cfg

from zund.conf import groups

noauth_group = cfg.OptGroup("noauth", title="noauth mode (auth_strategy = noauth)")

noauth_opts = [
    cfg.StrOpt("user_id", default="admin",
               help="User of requests whose X-Auth-Token is not `user:project`."),
    cfg.StrOpt("project_id", default="demo",
               help="Project of requests whose X-Auth-Token is not `user:project`."),
]


def register_opts(conf):
    groups.register_group(conf, noauth_group)
    conf.register_opts(noauth_opts, group=noauth_group.name)


def list_opts():
    return [(noauth_group.name, noauth_opts)]
