"""The member snapshot: the last known live members, kept in a small file.

Why (as Serf's snapshot): a node that restarts knows only its configured seeds.
When the restarting node IS the seed, or the seeds are down, it would see only
itself while the others keep it ``left``/``dead`` until one of them happens to
contact it. With the addresses of the members it last saw alive it can push-pull
with them at once, refute its old death with a higher incarnation and be back
within one push-pull interval.

The file is JSON ``{"v": 1, "members": [{"name", "addr"}, ...]}``, at most
``max_members`` entries, written atomically (temporary file + rename). A missing,
unreadable or malformed file is an empty snapshot, never an error: the snapshot is
a hint, the seeds still apply.

Who may call: ``zund.gossip.service.GossipService`` (load in startService, save on
membership changes, debounced). No timers or reactor here.
"""

from __future__ import annotations

import json
import os

from twisted.logger import Logger

log = Logger()

VERSION = 1
DEFAULT_MAX_MEMBERS = 256
#: a snapshot never grows past this many bytes (read is refused above it)
MAX_BYTES = 64 * 1024


class MemberSnapshot:
    """Load/save the last known live members of ``path``."""

    def __init__(self, path: str, max_members: int = DEFAULT_MAX_MEMBERS):
        self.path = path
        self.max_members = max_members

    def load(self) -> list[tuple[str, str]]:
        """[(name, "host:port")] as last saved; [] when there is nothing usable."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as e:
            log.warn("gossip.snapshot.unreadable path={path} error={error}", path=self.path,
                     error=str(e))
            return []
        if len(data) > MAX_BYTES:
            log.warn("gossip.snapshot.too_large path={path}", path=self.path)
            return []
        try:
            doc = json.loads(data)
            members = doc["members"] if doc.get("v") == VERSION else []
            out = [(str(m["name"]), str(m["addr"])) for m in members
                   if isinstance(m, dict) and isinstance(m.get("name"), str)
                   and isinstance(m.get("addr"), str)]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warn("gossip.snapshot.malformed path={path} error={error}", path=self.path,
                     error=str(e))
            return []
        return out[:self.max_members]

    def save(self, members: list[tuple[str, str]]) -> None:
        """Replace the snapshot with ``members`` [(name, "host:port")] (sorted,
        at most ``max_members``). OSError is logged, not raised."""
        chosen = sorted(set(members))[:self.max_members]
        doc = json.dumps({"v": VERSION, "members": [{"name": n, "addr": a} for n, a in chosen]},
                         sort_keys=True).encode()
        tmp = f"{self.path}.tmp"
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(doc)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            log.warn("gossip.snapshot.write_failed path={path} error={error}", path=self.path,
                     error=str(e))
