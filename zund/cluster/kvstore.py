"""One replicated store for small cluster-wide records, with no central database:
"3 rendezvous holders, majority write, newest read".

A record belongs to a *group* (a project's registries, the cluster's flavors);
the group's records are kept by the first ``replicas`` (3) nodes of the key
``<space>:<group>``'s rendezvous order over the live members
(``zund.cluster.quota.rendezvous``, the rule quota limits use). Any node serves a
read or a write:

* **write**: the changed record's new copy goes to every holder; a majority of
  acknowledgements is needed (else ``ServiceUnavailable``: the caller may retry).
* **read**: every holder is asked; copies merge **per record** by version (the
  newest wins; a deletion is a tombstone of a newer version, so a late copy cannot
  bring it back) and the newest copies are written back to holders that were
  behind (read repair). One answering holder is enough to read.

Versions are ``(seconds, node)`` (:func:`next_version`); merging per record means
two records created concurrently through two nodes both survive. A holder keeps a
copy durable (``persist``) before it acknowledges, and loads its copies when it
starts (``load``), so any one node can die, and all holders can restart.

A record is any frozen value with ``version`` (tuple), ``deleted`` (bool) and an
identity (``ident(record)``) and group (``group_of(record)``); the wire messages
are the caller's (``put_message(records)``, ``get_message(group | None)``), so
each kind keeps its own typed, versioned peer operations.

Who may call: the record kind's service (``zund.cluster.registries``,
``zund.cluster.flavors``) — reads/writes from its API operations, ``handle_put``
and ``handle_get`` from its peer handler.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from twisted.logger import Logger

from zund.cluster.quota import LIVE, rendezvous
from zund.common import errors

log = Logger()


def newer(record, other) -> bool:
    """Whether ``record`` is a newer copy than ``other`` (None: no copy)."""
    return other is None or tuple(record.version) > tuple(other.version)


def merge(copies: Iterable[Iterable[Any]], ident: Callable[[Any], str]) -> dict:
    """ident -> the newest copy among ``copies`` (tombstones included). Pure."""
    out: dict[str, Any] = {}
    for records in copies:
        for r in records:
            key = ident(r)
            if newer(r, out.get(key)):
                out[key] = r
    return out


def next_version(now_s: float, node: str, previous=None) -> tuple:
    """``(seconds, node)`` newer than ``previous``'s even if this clock is behind
    the writer of ``previous`` (a quick second write must still win). Pure."""
    if previous is not None:
        now_s = max(now_s, float(previous.version[0]) + 0.001)
    return (now_s, node)


class ReplicatedStore:
    """The records of one kind (``space``) as seen from node ``node``.

    ``view``: ``() -> list[NodeView]`` (gossip), None for a single node;
    ``client``: the PeerClient (``call(node, msg)``), None for a single node;
    ``persist``: ``async (record) -> None``, makes a copy durable (None: memory);
    ``put_message`` / ``get_message``: build this kind's peer messages.
    No I/O in the constructor; the owner calls :meth:`load` from its
    ``startService``.
    """

    def __init__(self, node: str, space: str, *, ident: Callable[[Any], str],
                 group_of: Callable[[Any], str],
                 put_message: Callable[[tuple], Any], get_message: Callable[[str | None], Any],
                 view: Callable | None = None, client=None,
                 persist: Callable[[Any], Awaitable[None]] | None = None,
                 replicas: int = 3):
        self.node = node
        self.space = space
        self.ident = ident
        self.group_of = group_of
        self._put_message = put_message
        self._get_message = get_message
        self._view = view
        self._client = client
        self._persist = persist
        self.replicas_count = replicas
        #: ident -> the newest copy this node holds
        self.held: dict[str, Any] = {}

    # -- this node's copies ------------------------------------------------------------

    def load(self, records: Iterable[Any]) -> int:
        """Hold the copies read back from this node's store (at start-up)."""
        n = 0
        for r in records:
            key = self.ident(r)
            if newer(r, self.held.get(key)):
                self.held[key] = r
                n += 1
        return n

    async def keep(self, record) -> None:
        """Hold ``record`` when newer than our copy: durable before it is
        acknowledged."""
        key = self.ident(record)
        if not newer(record, self.held.get(key)):
            return
        if self._persist is not None:
            await self._persist(record)
        self.held[key] = record

    def held_for(self, group: str | None) -> list:
        return [r for r in self.held.values() if group is None or self.group_of(r) == group]

    # -- the peer side ---------------------------------------------------------------

    async def handle_put(self, records: Iterable[Any]) -> None:
        for r in records:
            await self.keep(r)

    def handle_get(self, group: str | None) -> list:
        return self.held_for(group)

    # -- membership ------------------------------------------------------------------

    def members(self) -> dict:
        if self._view is None:
            return {}
        return {n.name: n for n in self._view() if n.state in LIVE}

    def holders(self, group: str) -> list[str]:
        names = set(self.members()) | {self.node}
        return rendezvous(f"{self.space}:{group}", names)[:max(1, self.replicas_count)]

    async def _call(self, name: str, msg):
        node = self.members().get(name)
        if node is None or self._client is None:
            raise errors.ServiceUnavailable(reason=f"node {name} is not alive")
        return await self._client.call(node, msg)

    # -- replicated reads and writes -------------------------------------------------

    async def _put_one(self, name: str, records: list) -> bool:
        try:
            if name == self.node:
                await self.handle_put(records)
            else:
                await self._call(name, self._put_message(tuple(records)))
            return True
        except errors.ZundError as e:
            log.info("kvstore.put_failed space={space} node={node} reason={r}",
                     space=self.space, node=name, r=str(e))
            return False

    async def read(self, group: str) -> dict:
        """ident -> newest copy of the group's records among its holders
        (tombstones included); holders that were behind are brought up to date.
        ServiceUnavailable when no holder answers."""
        answers: dict[str, list] = {}
        failures = []
        for name in self.holders(group):
            if name == self.node:
                answers[name] = self.held_for(group)
                continue
            try:
                answers[name] = list(await self._call(name, self._get_message(group)))
            except errors.ZundError as e:
                failures.append(f"{name}: {e}")
        if not answers:
            raise errors.ServiceUnavailable(
                reason=f"no holder of {self.space} {group} answered: {'; '.join(failures)}")
        newest = merge(answers.values(), self.ident)
        for name, held in answers.items():
            have = {self.ident(r): r for r in held}
            behind = [r for key, r in newest.items() if newer(r, have.get(key))]
            if behind:
                await self._put_one(name, behind)
        return newest

    async def write(self, record) -> None:
        """Send ``record`` to its group's holders; ServiceUnavailable without a
        majority of acknowledgements."""
        targets = self.holders(self.group_of(record))
        acks = 0
        for name in targets:
            acks += await self._put_one(name, [record])
        needed = len(targets) // 2 + 1
        if acks < needed:
            raise errors.ServiceUnavailable(
                reason=f"{self.space} {self.ident(record)} reached {acks} of "
                       f"{len(targets)} holders, {needed} needed")

    async def gather_all(self) -> dict:
        """Every group's records: each live node's copies, merged (an admin's
        view across groups; a node that does not answer is skipped)."""
        copies = [self.held_for(None)]
        for name in sorted(self.members()):
            if name == self.node:
                continue
            try:
                copies.append(list(await self._call(name, self._get_message(None))))
            except errors.ZundError as e:
                log.info("kvstore.gather_failed space={space} node={node} reason={r}",
                         space=self.space, node=name, r=str(e))
        return merge(copies, self.ident)
