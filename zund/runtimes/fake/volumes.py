"""The fake engine's volumes: a container's tree with volume subtrees mounted live.

``MountedTree`` is the mapping a container's filesystem functions see
(``zund.runtimes.fake.filesystem`` only uses mapping operations): a path at or
under a mount point reads and writes the volume's own dict (keys relative to the
mount point, ``""`` is its root), every other path the container's private tree. So
two containers mounting one volume see each other's writes at once, and the data
stays in the volume when the container is removed — as with Docker volumes.
"""

from __future__ import annotations

from collections.abc import MutableMapping


class MountedTree(MutableMapping):
    """``base`` (the container's own tree) with ``mounts`` ``{destination: volume
    tree}`` laid over it; the longest matching mount point wins."""

    def __init__(self, base: dict, mounts: dict):
        self.base = base
        self.mounts = dict(sorted(mounts.items(), key=lambda kv: -len(kv[0])))

    def _route(self, path: str) -> tuple[dict, str]:
        for dest, tree in self.mounts.items():
            if path == dest:
                return tree, ""
            if path.startswith(dest + "/"):
                return tree, path[len(dest):]
        return self.base, path

    def __getitem__(self, path):
        tree, key = self._route(path)
        return tree[key]

    def __setitem__(self, path, value):
        tree, key = self._route(path)
        tree[key] = value

    def __delitem__(self, path):
        tree, key = self._route(path)
        del tree[key]

    def __iter__(self):
        for path in self.base:
            if self._route(path)[0] is self.base:
                yield path
        for dest, tree in self.mounts.items():
            for key in list(tree):
                if self._route(dest + key)[0] is tree:
                    yield dest + key

    def __len__(self):
        return sum(1 for _ in self)
