"""What a node's store holds, read beside the running daemon (read-only SQLite):
for real-process tests that must wait until a record's copies are out before they
kill, drain or restart its owner."""

from __future__ import annotations

import os
import sqlite3


def generation(node, uuid: str, table: str) -> int:
    """The generation of ``uuid`` in ``node``'s store: its own record
    (``containers``) or a copy kept for another node (``replicas``); 0 if absent."""
    path = os.path.join(node.state_path, "zund.sqlite")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        query = ("SELECT json_extract(data, '$.generation') FROM containers WHERE uuid=?"
                 if table == "containers" else
                 "SELECT generation FROM replicas WHERE uuid=?")
        row = conn.execute(query, (uuid,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    finally:
        conn.close()


def replicated(owner, others, uuids) -> bool:
    """Every one of ``uuids`` has a copy at its owner's current generation on at
    least one of ``others`` (what a heal or a drain hands on from)."""
    for uuid in uuids:
        current = generation(owner, uuid, "containers")
        if not current or not any(generation(n, uuid, "replicas") >= current
                                  for n in others):
            return False
    return True
