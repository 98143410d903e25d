"""Pure tier: ``zund serve`` refuses the optional imports it never uses (issue 13 §5,
memory): the finder's semantics, and that no zund module imports one of them."""

from __future__ import annotations

import ast
import pathlib

import pytest

from zund.cmd.main import DAEMON_REFUSED_IMPORTS, RefuseImports

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_refused_package_and_submodules_raise_module_not_found():
    """A refused top-level name and its submodules raise ModuleNotFoundError naming them."""
    finder = RefuseImports({"OpenSSL"})
    for name in ("OpenSSL", "OpenSSL.SSL"):
        with pytest.raises(ModuleNotFoundError) as e:
            finder.find_spec(name)
        assert e.value.name == name


def test_other_names_fall_through_to_the_next_finder():
    """Names outside the set (even sharing a prefix) are left to the other finders."""
    finder = RefuseImports({"OpenSSL"})
    assert finder.find_spec("json") is None
    assert finder.find_spec("OpenSSLish") is None


def test_no_zund_module_imports_a_refused_dependency():
    """No zund module imports a refused name (nor twisted's TLS modules that need
    pyOpenSSL): the daemon would fail where it needs one."""
    banned = set(DAEMON_REFUSED_IMPORTS) | {"twisted.internet.ssl", "twisted.internet._sslverify"}
    offenders = []
    for path in sorted((ROOT / "zund").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name in banned or name.partition(".")[0] in DAEMON_REFUSED_IMPORTS:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
