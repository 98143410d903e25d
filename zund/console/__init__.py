"""Interactive consoles: ``exec --interactive`` and ``attach`` over websockets, from
any node (see docs/design.md "Interactive consoles")."""
