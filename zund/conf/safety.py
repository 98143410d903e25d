"""Safe listening defaults: what a node may expose, decided from its config.

Two rules (issue 10), applied by ``zund.service.build_node`` before anything binds:

* ``auth_strategy = noauth`` serves an unauthenticated *admin* API, so the API binds
  127.0.0.1 unless the operator both sets ``[api] host_ip`` to another address and
  sets ``[api] allow_noauth_remote = true``.
* With no ``[gossip] keys`` gossip is plaintext and peer RPC is signed with a key
  anyone can derive from the cluster name, so gossip and peer RPC bind 127.0.0.1 and
  non-loopback seeds or advertised addresses are refused, unless the operator sets
  ``[gossip] allow_insecure = true``.

Both overrides stay loudly logged. Pure: values in, a plan (or ``UnsafeConfig``) out.
"""

from __future__ import annotations

import ipaddress

import attrs

LOOPBACK = "127.0.0.1"


class UnsafeConfig(ValueError):
    """The config asks for an exposure the safety rules refuse; the message names the
    options that would allow it."""


@attrs.frozen
class ListenPlan:
    """Addresses the node binds, and the warnings the operator must see."""

    api_host: str
    peer_host: str
    gossip_host: str
    warnings: tuple[str, ...] = ()


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; hostnames are not resolved
    (a name is treated as reachable from other hosts)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _seed_host(seed: str) -> str:
    seed = seed.strip()
    if seed.startswith("["):  # [v6]:port
        return seed[1:].split("]", 1)[0]
    return seed.rsplit(":", 1)[0] if seed.count(":") == 1 else seed


def listen_plan(*, auth_strategy: str, api_host: str, allow_noauth_remote: bool,
                has_cluster_keys: bool, allow_insecure: bool, peer_host: str,
                gossip_host: str, seeds: list[str] | tuple[str, ...] = (),
                advertise_hosts: list[str | None] | tuple[str | None, ...] = ()) -> ListenPlan:
    """The addresses to bind under the safety rules above.

    Raises ``UnsafeConfig`` when the config cannot be made safe by binding loopback
    (non-loopback seeds or advertised addresses without cluster keys)."""
    warnings = []
    if auth_strategy == "noauth" and not is_loopback(api_host):
        if allow_noauth_remote:
            warnings.append(
                f"api.noauth_remote: the API on {api_host} accepts UNAUTHENTICATED admin "
                "requests from anyone who can reach it ([api] allow_noauth_remote = true); "
                "use auth_strategy = keystone for anything but a lab")
        else:
            warnings.append(
                f"api.noauth_loopback: auth_strategy = noauth, so the API binds {LOOPBACK}, "
                f"not [api] host_ip = {api_host}; to serve it unauthenticated on that "
                "address set [api] allow_noauth_remote = true")
            api_host = LOOPBACK
    if not has_cluster_keys:
        if allow_insecure:
            if not (is_loopback(peer_host) and is_loopback(gossip_host)):
                warnings.append(
                    "cluster.insecure: [gossip] keys is empty and [gossip] allow_insecure = "
                    "true: gossip is PLAINTEXT and peer RPC is signed with a key anyone can "
                    "derive; make a key with `zund keygen`")
        else:
            remote = sorted({_seed_host(s) for s in seeds if not is_loopback(_seed_host(s))}
                            | {h for h in advertise_hosts if h and not is_loopback(h)})
            if remote:
                raise UnsafeConfig(
                    "[gossip] keys is empty, so this node refuses to join non-loopback peers "
                    f"({', '.join(remote)}): put a key from `zund keygen` in [gossip] keys "
                    "(the same on every node), or set [gossip] allow_insecure = true")
            moved = [f"{name} = {host}" for name, host in
                     (("[peer] host_ip", peer_host), ("[gossip] bind_host", gossip_host))
                     if not is_loopback(host)]
            if moved:
                warnings.append(
                    f"cluster.loopback_only: [gossip] keys is empty, so peer RPC and gossip "
                    f"bind {LOOPBACK}, not {', '.join(moved)}; set [gossip] keys (`zund "
                    "keygen`) or [gossip] allow_insecure = true")
            peer_host = LOOPBACK if not is_loopback(peer_host) else peer_host
            gossip_host = LOOPBACK if not is_loopback(gossip_host) else gossip_host
    return ListenPlan(api_host=api_host, peer_host=peer_host, gossip_host=gossip_host,
                      warnings=tuple(warnings))


def plan_from_conf(conf) -> ListenPlan:
    """``listen_plan`` for a parsed ``zund.conf.make_conf()`` ConfigOpts."""
    g = conf["gossip"]
    return listen_plan(
        auth_strategy=conf.auth_strategy, api_host=conf.api.host_ip,
        allow_noauth_remote=conf.api.allow_noauth_remote,
        has_cluster_keys=bool(list(g["keys"])), allow_insecure=g["allow_insecure"],
        peer_host=conf.peer.host_ip, gossip_host=g["bind_host"], seeds=list(g["seeds"]),
        advertise_hosts=[g["advertise_host"], conf.peer.advertise_host])
