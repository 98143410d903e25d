"""The cluster as this node's gossip membership shows it.

``ClusterView`` turns gossip members (opaque metadata blobs, ``zund/gossip``) into
what the cluster layer reads: ``NodeView`` values carrying a typed ``NodeMeta``
for the coordinator, the directory and the cluster containers, and rows for
``zund peers``. Each member's blob is decoded once per gossip version (name,
metadata version, incarnation), never per reader.
"""

from __future__ import annotations

from typing import Callable

from zund.cluster import metadata
from zund.cluster.metadata import NodeMeta
from zund.cluster.types import NodeView

#: bound on the decode cache (entries of members that changed or left pile up)
DEFAULT_CACHE_SIZE = 4096


class ClusterView:
    """``members``: ``() -> list[MemberView]`` (``GossipService.members``; this node
    included). Pure apart from that callable; reactor thread only."""

    def __init__(self, members: Callable[[], list], cache_size: int = DEFAULT_CACHE_SIZE):
        self._members = members
        self._cache: dict[tuple, NodeMeta | None] = {}
        self._cache_size = cache_size
        #: member name -> (the MemberView, its NodeView): gossip hands out the same
        #: view object until the member changes (``Member.view``)
        self._nodes: dict[str, tuple] = {}

    def meta_of(self, member) -> NodeMeta | None:
        """The member's metadata (None when it has none, or none we understand)."""
        key = (member.name, member.meta_version, member.incarnation)
        if key in self._cache:
            return self._cache[key]
        meta = metadata.decode(member.meta)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = meta
        return meta

    def nodes(self) -> list[NodeView]:
        """Every member as a NodeView (this node included)."""
        out = []
        members = self._members()
        made = self._nodes
        for m in members:
            cached = made.get(m.name)
            if cached is not None and cached[0] is m:
                out.append(cached[1])
                continue
            meta = self.meta_of(m)
            node = NodeView(name=m.name, state=m.state, api=meta.api if meta else "",
                            peer=meta.peer if meta else "", meta=meta,
                            changed_at=m.state_changed_at)
            made[m.name] = (m, node)
            out.append(node)
        if len(made) > 2 * len(members) + 16:  # forgotten members
            names = {m.name for m in members}
            for name in [n for n in made if n not in names]:
                del made[name]
        return out

    def peers(self) -> list[dict]:
        """Members as `zund peers` shows them (JSON-ready; this node included)."""
        out = []
        for m in self._members():
            meta = self.meta_of(m)
            out.append({"name": m.name, "addr": m.addr, "state": m.state,
                        "incarnation": m.incarnation, "last_change": m.state_changed_at,
                        "meta": meta.to_wire() if meta else None,
                        "summary": metadata.summary(meta)})
        return out
