"""The kernel side of the vxlan backend: bridges, VXLAN devices, veth pairs and
iptables rules, through pyroute2 (netlink) on the injected blocking-call pool.

Names (at most 15 bytes, the kernel's limit):
``zbr-<vni>`` bridge, ``zvx-<vni>`` VXLAN device, ``zv<port id[:11]>`` the host end
of a port's veth pair, ``zc<port id[:11]>`` its other end before it is moved into
the container's namespace and renamed (``eth0``, ``eth1``...).

Everything is idempotent: each call makes the kernel match what it is given.
"""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Callable

from twisted.logger import Logger

from zund.network import errors as net_errors

log = Logger()

ZERO_MAC = "00:00:00:00:00:00"


def bridge_name(vni: int) -> str:
    """The bridge of VXLAN network ``vni`` (its ports and its VXLAN device on it)."""
    return f"zbr-{vni}"


def vxlan_name(vni: int) -> str:
    """The VXLAN device of network ``vni``."""
    return f"zvx-{vni}"


def host_end(port_id: str) -> str:
    return "zv" + port_id.replace("-", "")[:11]


def peer_end(port_id: str) -> str:
    return "zc" + port_id.replace("-", "")[:11]


def _chain(port_id: str) -> str:
    return "zsg-" + port_id.replace("-", "")[:20]


class Dataplane:
    """``run_blocking(fn) -> Deferred``: the node's bounded thread pool."""

    def __init__(self, run_blocking: Callable):
        self._run_blocking = run_blocking

    async def _blocking(self, fn, *args):
        try:
            return await self._run_blocking(fn, *args)
        except net_errors.NetworkError:
            raise
        except Exception as e:  # netlink / OS errors of any kind: say which call
            raise net_errors.NetworkError(reason=f"{getattr(fn, '__name__', fn)}: "
                                                 f"{type(e).__name__}: {e}") from e

    # -- networks ------------------------------------------------------------------------

    async def ensure_network(self, vni: int, mtu: int, local_ip: str, port: int,
                             vteps: frozenset, members: tuple = ()) -> None:
        """The network's bridge and VXLAN device, its flood list = ``vteps``, and
        each of ``members`` (``(host-end name, mtu)`` of this node's ports on it:
        a container's veth or a micro-VM's TAP) that exists on the bridge again: a
        bridge deleted and made anew (by this sync, after someone removed it) has
        lost its ports, and their containers and guests would be cut off."""
        await self._blocking(_ensure_network, vni, mtu, local_ip, port, frozenset(vteps),
                             tuple(members))

    async def remove_network(self, vni: int) -> None:
        await self._blocking(_remove_network, vni)

    # -- ports ---------------------------------------------------------------------------

    async def plug_veth(self, port, pid: int, ifname: str) -> None:
        """Wire ``port`` into the network namespace of process ``pid`` as ``ifname``."""
        await self._blocking(_plug_veth, port, pid, ifname)

    async def unplug_veth(self, port) -> None:
        await self._blocking(_unplug_veth, port)

    async def adopt_tap(self, port, tap: str, owner_pid: int | None) -> None:
        """Put a micro-VM's TAP ``tap`` (made by libvirt for the guest's NIC) on the
        port's bridge as ``host_end(port.id)``; ``owner_pid``: a process in the
        namespace libvirt made it in (its qemu), when that is not ours."""
        await self._blocking(_adopt_tap, port, tap, owner_pid)

    # -- security (iptables physdev + conntrack) ---------------------------------------

    async def apply_security(self, port, rules, revoked=()) -> None:
        """Make the kernel enforce ``rules`` (a ``secgroups.PortRules``) for ``port``;
        ``revoked``: addresses admitted before and no longer, whose flows to the
        port are forgotten (conntrack would let them go on as ESTABLISHED)."""
        await self._blocking(_apply_security, port, rules, tuple(revoked))

    async def drop_security(self, port) -> None:
        await self._blocking(_drop_security, port)


# -- blocking halves (run on the pool) -----------------------------------------------------


def _ipr():
    from pyroute2 import IPRoute
    return IPRoute()


def _ensure_network(vni: int, mtu: int, local_ip: str, port: int, vteps: frozenset,
                    members: tuple = ()) -> None:
    br, vx = bridge_name(vni), vxlan_name(vni)
    with _ipr() as ipr:
        if not ipr.link_lookup(ifname=br):
            ipr.link("add", ifname=br, kind="bridge")
        bri = ipr.link_lookup(ifname=br)[0]
        ipr.link("set", index=bri, mtu=mtu, state="up")
        if not ipr.link_lookup(ifname=vx):
            ipr.link("add", ifname=vx, kind="vxlan", vxlan_id=vni, vxlan_local=local_ip,
                     vxlan_port=port, vxlan_learning=0)
        vxi = ipr.link_lookup(ifname=vx)[0]
        ipr.link("set", index=vxi, master=bri, mtu=mtu, state="up")
        have = set()
        for entry in ipr.fdb("dump", ifindex=vxi):
            if entry.get("lladdr") == ZERO_MAC and entry.get_attr("NDA_DST"):
                have.add(entry.get_attr("NDA_DST"))
        for dst in sorted(set(vteps) - have):
            ipr.fdb("append", ifindex=vxi, lladdr=ZERO_MAC, dst=dst)
        for dst in sorted(have - set(vteps)):
            ipr.fdb("del", ifindex=vxi, lladdr=ZERO_MAC, dst=dst)
        for name, member_mtu in members:
            # absent: not plugged yet (or its TAP still in qemu's namespace), or
            # being unplugged; the plug puts it on the bridge itself
            for idx in ipr.link_lookup(ifname=name):
                link = ipr.get_links(idx)[0]
                if link.get_attr("IFLA_MASTER") != bri:
                    ipr.link("set", index=idx, master=bri, mtu=member_mtu, state="up")


def _remove_network(vni: int) -> None:
    with _ipr() as ipr:
        for name in (vxlan_name(vni), bridge_name(vni)):
            for idx in ipr.link_lookup(ifname=name):
                ipr.link("del", index=idx)


def _plug_veth(port, pid: int, ifname: str | None) -> None:
    """``ifname`` None: the first free ``eth<N>``. A link with the port's MAC in
    the namespace means it is already wired (idempotent)."""
    from pyroute2 import NetNS

    ns_path = f"/proc/{pid}/ns/net"
    bridge = port.vif_details["bridge_name"]
    # the subnet's prefix: vxlan puts the cidr in vif_details; another backend may
    # put it beside the address (fixed_ips[0]["cidr"])
    cidr = port.vif_details.get("cidr") or port.fixed_ips[0].get("cidr")
    if not cidr:
        raise net_errors.NetworkError(reason=f"port {port.id} names no subnet cidr")
    prefix = ipaddress.ip_network(cidr, strict=False).prefixlen
    with NetNS(ns_path) as ns:
        names = set()
        for link in ns.get_links():
            names.add(link.get_attr("IFLA_IFNAME"))
            if link.get_attr("IFLA_ADDRESS") == port.mac:
                return
    if ifname is None:
        ifname = next(f"eth{i}" for i in range(1000) if f"eth{i}" not in names)
    host, peer = host_end(port.id), peer_end(port.id)
    with _ipr() as ipr:
        for name in (host, peer):  # a stale pair (its sandbox died): make it again
            for idx in ipr.link_lookup(ifname=name):
                ipr.link("del", index=idx)
        ipr.link("add", ifname=host, kind="veth", peer=peer)
        bri = ipr.link_lookup(ifname=bridge)
        if not bri:
            raise net_errors.NetworkError(reason=f"bridge {bridge} does not exist")
        hi = ipr.link_lookup(ifname=host)[0]
        ipr.link("set", index=hi, master=bri[0], mtu=port.mtu, state="up")
        pi = ipr.link_lookup(ifname=peer)[0]
        ipr.link("set", index=pi, net_ns_pid=pid)
    with NetNS(ns_path) as ns:
        idx = ns.link_lookup(ifname=peer)[0]
        ns.link("set", index=idx, ifname=ifname, address=port.mac, mtu=port.mtu)
        ns.addr("add", index=idx, address=port.ip_address, prefixlen=prefix)
        ns.link("set", index=idx, state="up")
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")


def _adopt_tap(port, tap: str, owner_pid: int | None) -> None:
    """Idempotent. The TAP keeps working when moved to another namespace (qemu
    holds its file descriptor), so a node in its own namespace (tests) with
    libvirtd in the host's works; in production they are one namespace."""
    import os

    from pyroute2 import NetNS

    bridge = port.vif_details["bridge_name"]
    if owner_pid:
        theirs = f"/proc/{owner_pid}/ns/net"
        if os.stat(theirs).st_ino != os.stat("/proc/self/ns/net").st_ino:
            with NetNS(theirs) as ns:
                idx = ns.link_lookup(ifname=tap)
                if idx:  # a fresh boot's TAP: replace any left-over of an earlier one
                    with _ipr() as ipr:
                        for stale in ipr.link_lookup(ifname=tap):
                            ipr.link("del", index=stale)
                    ns.link("set", index=idx[0], net_ns_pid=os.getpid())
    with _ipr() as ipr:
        bri = ipr.link_lookup(ifname=bridge)
        if not bri:
            raise net_errors.NetworkError(reason=f"bridge {bridge} does not exist")
        idx = ipr.link_lookup(ifname=tap)
        if not idx:
            raise net_errors.NetworkError(reason=f"the guest's TAP {tap} does not exist")
        ipr.link("set", index=idx[0], master=bri[0], mtu=port.mtu, state="up")


def _unplug_veth(port) -> None:
    with _ipr() as ipr:
        for idx in ipr.link_lookup(ifname=host_end(port.id)):
            ipr.link("del", index=idx)


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                       timeout=30)
    if check and p.returncode != 0:
        raise net_errors.NetworkError(reason=f"iptables {' '.join(args)}: {p.stderr.strip()}")
    return p


def _bridge_nf_on() -> None:
    """Bridged traffic passes the iptables FORWARD chain (br_netfilter, per namespace)."""
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables", "w") as f:
            f.write("1")
    except OSError as e:
        raise net_errors.NetworkError(reason=(
            f"bridged traffic cannot be filtered: {e} (load br_netfilter)")) from e


def _forward_rules(port, ip: str) -> list[tuple]:
    """The FORWARD rules of a port: its ingress chain (by the bridge port the packet
    leaves by) and an anti-spoofing drop (a packet entering from the port must carry
    its address, or a container could pose as a member of another's group)."""
    dev = host_end(port.id)
    return [("-m", "physdev", "--physdev-out", dev, "--physdev-is-bridged",
             "-j", _chain(port.id)),
            ("-m", "physdev", "--physdev-in", dev, "--physdev-is-bridged",
             "!", "-s", f"{ip}/32", "-j", "DROP")]


def _apply_security(port, rules, revoked: tuple = ()) -> None:
    """Ingress to ``port``: replies (conntrack), its exposed ports, and anything
    from the addresses in ``rules.sources``; all else dropped. The chain is
    refilled in one ``iptables-restore`` transaction, so no packet ever sees it
    half made (an empty chain would let everything in)."""
    _bridge_nf_on()
    chain = _chain(port.id)
    lines = ["*filter", f":{chain} - [0:0]",
             f"-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"]
    for num, proto in rules.exposed:
        lines.append(f"-A {chain} -p {proto} --dport {int(num)} -j RETURN")
    for ip in rules.sources:
        lines.append(f"-A {chain} -s {ipaddress.IPv4Address(ip)}/32 -j RETURN")
    lines += [f"-A {chain} -j DROP", "COMMIT", ""]
    p = subprocess.run(["iptables-restore", "-w", "5", "--noflush"], input="\n".join(lines),
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise net_errors.NetworkError(reason=f"iptables-restore ({chain}): {p.stderr.strip()}")
    # a rule's position in FORWARD does not matter: each drops or jumps only
    # for its own port
    for rule in _forward_rules(port, rules.ip):
        if _iptables("-C", "FORWARD", *rule, check=False).returncode != 0:
            _iptables("-I", "FORWARD", *rule)
    _ipv6_closed(port)
    if revoked:
        _forget_flows(rules.ip, revoked)


def _forget_flows(dst: str, sources) -> None:
    """Delete the conntrack entries of connections from ``sources`` to ``dst``."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    ct = Conntrack()
    try:
        for src in sources:
            for entry in list(ct.dump_entries(tuple_orig=NFCTAttrTuple(saddr=src, daddr=dst))):
                try:
                    ct.delete(entry)
                except Exception as e:  # gone by itself meanwhile
                    log.debug("network.secgroup.flow_gone src={src} dst={dst} e={e}",
                              src=src, dst=dst, e=str(e))
    finally:
        ct.close()


def _ipv6_closed(port) -> None:
    """Groups are IPv4 rules: IPv6 (link-local addresses appear by themselves)
    to the port is dropped, or it would pass around them."""
    dev = host_end(port.id)
    rule = ("-m", "physdev", "--physdev-out", dev, "--physdev-is-bridged", "-j", "DROP")
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-ip6tables", "w") as f:
            f.write("1")
        base = ["ip6tables", "-w", "5"]
        if subprocess.run(base + ["-C", "FORWARD", *rule], capture_output=True,
                          timeout=30).returncode != 0:
            p = subprocess.run(base + ["-I", "FORWARD", *rule], capture_output=True,
                               text=True, timeout=30)
            if p.returncode != 0:
                raise OSError(p.stderr.strip())
    except (OSError, subprocess.SubprocessError) as e:
        log.warn("network.secgroup.ipv6_unfiltered port={port} reason={r}",
                 port=port.id, r=str(e))


def _drop_security(port) -> None:
    chain, dev = _chain(port.id), host_end(port.id)
    while _iptables("-D", "FORWARD", "-m", "physdev", "--physdev-out", dev,
                    "--physdev-is-bridged", "-j", chain, check=False).returncode == 0:
        pass
    ip = port.ip_address
    if ip:
        spoof = _forward_rules(port, ip)[1]
        while _iptables("-D", "FORWARD", *spoof, check=False).returncode == 0:
            pass
    six = ["ip6tables", "-w", "5", "-D", "FORWARD", "-m", "physdev", "--physdev-out", dev,
           "--physdev-is-bridged", "-j", "DROP"]
    try:
        while subprocess.run(six, capture_output=True, timeout=30).returncode == 0:
            pass
    except (OSError, subprocess.SubprocessError):
        pass
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)
