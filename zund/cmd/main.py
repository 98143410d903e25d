"""``zund`` command line: ``serve``, ``peers``, ``events``, ``drain``, ``dev-cluster``, ``keygen``, ``--version``.

The only module that touches the global reactor.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import sys

from zund.conf import load_conf


#: log format -> the fields it names (formats are a few dozen constants)
_FORMAT_FIELDS: dict = {}
#: (second, text) of the last timestamp formatted (formatTime has 1 s resolution)
_LAST_TIME: list = [None, ""]


def _format_fields(fmt: str) -> frozenset:
    used = _FORMAT_FIELDS.get(fmt)
    if used is None:
        import string

        try:
            used = frozenset(f for _, f, _, _ in string.Formatter().parse(fmt) if f)
        except ValueError:
            used = frozenset()
        if len(_FORMAT_FIELDS) < 4096:
            _FORMAT_FIELDS[fmt] = used
    return used


def _event_text(event: dict, fmt) -> str:
    """What ``twisted.logger.formatEvent`` gives, without its per-call set-up for
    the usual event: a text format without Twisted's ``{name()}`` call syntax is
    ``str.format_map`` of the event (the same PEP 3101 syntax); anything else,
    or a format that fails, is left to Twisted (its "Unable to format" text)."""
    if isinstance(fmt, str) and "()" not in fmt and "log_flattened" not in event:
        try:
            return fmt.format_map(event)
        except Exception:  # noqa: BLE001 - Twisted's own text for a bad event
            pass
    from twisted.logger import formatEvent

    return formatEvent(event)


def format_event_kv(event: dict) -> str:
    """The event's text plus every field its format did not mention, as key=value
    (STYLE: logs are events with stable names and key=value fields)."""
    fmt = event.get("log_format")
    text = _event_text(event, fmt)
    used = _format_fields(fmt) if isinstance(fmt, str) else frozenset()
    extra = [f"{k}={event[k]!r}" if isinstance(event[k], str) and " " in event[k]
             else f"{k}={event[k]}"
             for k in sorted(event)
             if not k.startswith("log_") and k not in used and k not in ("format", "message",
                                                                          "isError", "system",
                                                                          "time")]
    return " ".join([text, *extra]) if extra else text


def _format_time(when) -> str:
    from twisted.logger import formatTime

    if when is None:
        return formatTime(when)
    second = int(when)
    if _LAST_TIME[0] != second:
        _LAST_TIME[1] = formatTime(second)
        _LAST_TIME[0] = second
    return _LAST_TIME[1]


def format_line(event: dict) -> str | None:
    """``<time> [<namespace>#<level>] <event text> k=v ...`` plus any traceback."""
    text = format_event_kv(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    if not text:
        return None
    level = event.get("log_level")
    system = event.get("log_system") or (
        f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}")
    return f"{_format_time(event.get('log_time'))} [{system}] {text}".replace("\n", "\n\t") \
        + "\n"


def format_json_line(event: dict) -> str | None:
    """``[DEFAULT] log_format = json``: one JSON object per line — time, level,
    namespace, the event text, and every key=value field (as strings when they are
    not JSON values), plus the traceback of a failure."""
    import json

    level = event.get("log_level")
    out = {"time": event.get("log_time"), "level": level.name if level is not None else None,
           "namespace": event.get("log_namespace"),
           "event": _event_text(event, event.get("log_format"))}
    fields = {}
    for k in sorted(event):
        if k.startswith("log_") or k in ("format", "message", "isError", "system", "time"):
            continue
        v = event[k]
        fields[k] = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
    if fields:
        out["fields"] = fields
    failure = event.get("log_failure")
    if failure is not None:
        out["traceback"] = failure.getTraceback()
    return json.dumps(out) + "\n"


def _start_logging(debug: bool, log_format: str = "text") -> None:
    from twisted.logger import (FileLogObserver, FilteringLogObserver, LogLevel,
                                LogLevelFilterPredicate, globalLogBeginner)

    level = LogLevel.debug if debug else LogLevel.info
    text_observer = FileLogObserver(
        sys.stdout, format_json_line if log_format == "json" else format_line)
    observer = FilteringLogObserver(text_observer,
                                    [LogLevelFilterPredicate(defaultLogLevel=level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")


#: Optional dependencies that libraries of the daemon import when installed, but that
#: no code path of ``zund serve`` uses (issue 13 §5, memory; figures from
#: ``bench/memory.py``). Refused, every library takes its documented "not installed"
#: branch:
#: - ``OpenSSL``/``service_identity``: Twisted's reactor imports pyOpenSSL (and with
#:   it cryptography's x509) for ``listenSSL``/``startTLS``, about 5 MB RSS. The
#:   daemon has no TLS endpoint or https client in Twisted: API, peer RPC, console
#:   and metrics listen on plain TCP, peer frames are sealed by zund.cluster.sealing;
#:   Keystone/Glance/Neutron/docker go through requests and the stdlib ``ssl``.
#: - ``charset_normalizer``/``chardet``: requests' guess of an undeclared body
#:   encoding, about 3 MB; without them requests decodes such a body as UTF-8.
#: Other commands and the tests import them as usual.
DAEMON_REFUSED_IMPORTS = frozenset({"OpenSSL", "service_identity", "charset_normalizer",
                                    "chardet"})


class RefuseImports:
    """A ``sys.meta_path`` finder that makes ``import X`` (and ``X.*``) raise
    ``ModuleNotFoundError`` for the top-level names given; other names fall through."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"zund serve does not load {fullname}", name=fullname)
        return None


def refuse_unused_imports(names=DAEMON_REFUSED_IMPORTS) -> None:
    """Install :class:`RefuseImports` first in ``sys.meta_path`` (before the reactor
    or any client library is imported) and silence requests' warning about the
    missing charset detector. Only ``main`` calls it, for ``zund serve``."""
    import warnings

    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
    if not any(isinstance(f, RefuseImports) for f in sys.meta_path):
        sys.meta_path.insert(0, RefuseImports(names))


def settle_memory() -> None:
    """Once the node has started (issue 13 §5): collect start-up garbage, move what
    survives (modules, classes, config, the service tree: they live as long as the
    process) into gc's permanent generation, so later full collections do not walk
    it again, and give freed heap pages back to the kernel (glibc's ``malloc_trim``;
    skipped where there is none)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def serve(argv: list[str]) -> int:
    conf = load_conf(argv, "Run a zund node.")
    from zund.conf.safety import UnsafeConfig, plan_from_conf

    try:
        plan_from_conf(conf)  # build_node applies it; refuse before anything starts
    except UnsafeConfig as e:
        print(f"zund: refusing to start: {e}", file=sys.stderr)
        return 2
    _start_logging(conf.debug, conf.log_format)
    from twisted.internet import reactor
    from twisted.logger import Logger

    from zund.service import build_node

    log = Logger(namespace="zund.cmd")
    node = build_node(conf, reactor)
    exit_code = [0]

    def start():
        d = node.startService()

        def failed(f):
            log.failure("node.start_failed", f)
            exit_code[0] = 1
            reactor.stop()

        d.addCallbacks(lambda _: settle_memory(), failed)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", node.stopService)
    reactor.run()
    return exit_code[0]


def version() -> str:
    """The installed distribution's version (the package's own when run from a tree)."""
    from importlib import metadata

    try:
        return metadata.version("zund")
    except metadata.PackageNotFoundError:
        from zund import __version__

        return __version__


def keygen(out=None, random_bytes=os.urandom) -> int:
    """Print a fresh cluster key: base64 of 32 random bytes, the format of
    ``[gossip] keys`` (AES-256-GCM for gossip; peer RPC keys are derived from it)."""
    out = out if out is not None else sys.stdout
    key = random_bytes(32)
    out.write(base64.b64encode(key).decode("ascii") + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="zund", description="zund node daemon and tools.",
        epilog="serve: run a node; peers: a running node's view of the cluster; "
               "events: what a running node did (--follow, --json); "
               "drain: move this node's auto_heal containers away (--undo, --status); "
               "dev-cluster: N local nodes; keygen: print a new [gossip] keys value.")
    parser.add_argument("command", choices=["serve", "peers", "events", "drain",
                                            "dev-cluster", "keygen"])
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"zund {version()}")
        return 0
    ns, rest = parser.parse_known_args(argv[:1])
    rest = argv[1:]
    if ns.command == "serve":
        refuse_unused_imports()  # the process is the daemon (not a test calling serve)
        return serve(rest)
    if ns.command == "peers":
        from zund.cmd import peers

        return peers.main(rest)
    if ns.command == "drain":
        from zund.cmd import drain

        return drain.main(rest)
    if ns.command == "events":
        from zund.cmd import events

        return events.main(rest)
    if ns.command == "keygen":
        argparse.ArgumentParser(prog="zund keygen",
                                description=keygen.__doc__.split("\n\n")[0]).parse_args(rest)
        return keygen()
    if ns.command == "dev-cluster":
        from zund.cmd import devcluster

        return devcluster.main(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
