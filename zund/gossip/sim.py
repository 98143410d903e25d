"""Simulated clusters of ``GossipService`` on ``memnet`` + one ``HeapClock``.

Used by tests/gossip and bench/gossip_sim.py.  Every node is a full
``GossipService`` (codec, timers, push-pull included), only the network and
the clock are simulated.  Addresses are in 127.0.0.0/8 although no packet
ever leaves the process.
"""

from __future__ import annotations

import random

from zund.gossip import config as gossip_config
from zund.gossip.codec import PushPullState
from zund.gossip.keyring import Keyring
from zund.gossip.member import MemberState
from zund.gossip.memnet import HeapClock, MemoryNetwork
from zund.gossip.service import GossipService


def sim_addr(i: int) -> tuple:
    return (f"127.{i // 62500 % 250}.{i // 250 % 250}.{i % 250 + 1}", 9519)


class SimCluster:
    def __init__(self, seed: int = 0, config=None, loss: float = 0.0, latency=(0.0005, 0.002),
                 keys=()):
        self.seed = seed
        self.config = config or gossip_config.lan()
        self.clock = HeapClock()
        self.clock.advance(1_000_000.0)  # a non-zero epoch, like wall-clock time
        self.net = MemoryNetwork(self.clock, random.Random(seed * 7919 + 1), loss=loss, latency=latency)
        self.keys = list(keys)
        self.nodes: dict[str, GossipService] = {}
        self.events: list = []

    def add_node(self, i: int, seeds=(), start: bool = True, keyring: Keyring | None = None,
                 name: str | None = None) -> GossipService:
        name = name or f"n{i}"
        addr = sim_addr(i)
        node = GossipService(
            self.config, name, addr, addr, list(seeds),
            keyring if keyring is not None else Keyring(self.keys),
            self.clock, random.Random(self.seed * 100_003 + i), transport_factory=self.net.transport)
        node.add_listener(lambda kind, member, _name=name: self.events.append(
            (self.clock.seconds(), _name, kind, member.name)))
        self.nodes[name] = node
        if start:
            node.startService()
        return node

    def start_many(self, n: int, seed_count: int = 1) -> None:
        """Start n nodes; node 0..seed_count-1 are the seeds everyone joins."""
        seeds = [sim_addr(i) for i in range(seed_count)]
        for i in range(n):
            self.add_node(i, seeds=seeds)

    def bootstrap_full(self) -> None:
        """Give every node the full, alive member list (steady state, no join storm)."""
        states = [PushPullState(n.node_name, n.advertise, 1, MemberState.ALIVE, b"", 0)
                  for n in self.nodes.values()]
        now = self.clock.seconds()
        for node in self.nodes.values():
            node._apply(node._membership.bootstrap(states, now))

    def running(self) -> list[GossipService]:
        return [n for n in self.nodes.values() if n.running]

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run_until(self, predicate, timeout_s: float, step_s: float = 0.1):
        """Advance until ``predicate()``; returns the simulated seconds taken or None."""
        start = self.clock.seconds()
        while self.clock.seconds() - start < timeout_s:
            if predicate():
                return self.clock.seconds() - start
            self.clock.advance(step_s)
        return self.clock.seconds() - start if predicate() else None

    def states_seen(self, about: str) -> dict:
        """{observer: state of ``about``} over running nodes other than ``about``."""
        out = {}
        for node in self.running():
            if node.node_name == about:
                continue
            view = {m.name: m for m in node.members()}
            out[node.node_name] = view[about].state if about in view else None
        return out

    def converged(self, alive=None) -> bool:
        """Every running node sees exactly the running nodes as alive."""
        alive = set(alive) if alive is not None else {n.node_name for n in self.running()}
        for node in self.running():
            seen = {m.name for m in node.members() if m.state == "alive"}
            if seen != alive:
                return False
        return True
