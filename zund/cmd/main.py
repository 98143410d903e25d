"""``zund`` command line: ``serve``, ``peers``, ``dev-cluster``.

The only module that touches the global reactor.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_CONFIG = "/etc/zund/zund.conf"


def load_conf(argv: list[str], description: str):
    """Parse oslo.config options (``--config-file``, ``--config-dir``) from argv."""
    from zund import conf as zconf

    conf = zconf.make_conf()
    default_files = [DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else []
    conf.register_cli_opt(
        __import__("oslo_config").cfg.BoolOpt("debug", default=False, help="Log debug events."))
    conf(argv, project="zund", prog="zund", description=description,
         default_config_files=default_files)
    return conf


def format_event_kv(event: dict) -> str:
    """The event's text plus every field its format did not mention, as key=value
    (STYLE: logs are events with stable names and key=value fields)."""
    import string

    from twisted.logger import formatEvent

    text = formatEvent(event)
    fmt = event.get("log_format") or ""
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(fmt) if f}
    except ValueError:
        used = set()
    extra = [f"{k}={event[k]!r}" if isinstance(event[k], str) and " " in event[k]
             else f"{k}={event[k]}"
             for k in sorted(event)
             if not k.startswith("log_") and k not in used and k not in ("format", "message",
                                                                          "isError", "system",
                                                                          "time")]
    return " ".join([text, *extra]) if extra else text


def format_line(event: dict) -> str | None:
    """``<time> [<namespace>#<level>] <event text> k=v ...`` plus any traceback."""
    from twisted.logger import formatTime

    text = format_event_kv(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    if not text:
        return None
    level = event.get("log_level")
    system = event.get("log_system") or (
        f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}")
    return f"{formatTime(event.get('log_time'))} [{system}] {text}".replace("\n", "\n\t") + "\n"


def _start_logging(debug: bool) -> None:
    from twisted.logger import (FileLogObserver, FilteringLogObserver, LogLevel,
                                LogLevelFilterPredicate, globalLogBeginner)

    level = LogLevel.debug if debug else LogLevel.info
    text_observer = FileLogObserver(sys.stdout, format_line)
    observer = FilteringLogObserver(text_observer,
                                    [LogLevelFilterPredicate(defaultLogLevel=level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def serve(argv: list[str]) -> int:
    conf = load_conf(argv, "Run a zund node.")
    _start_logging(conf.debug)
    from twisted.internet import reactor
    from twisted.logger import Logger

    from zund.service import NodeService

    log = Logger(namespace="zund.cmd")
    node = NodeService(conf, reactor)
    exit_code = [0]

    def start():
        d = node.startService()

        def failed(f):
            log.failure("node.start_failed", f)
            exit_code[0] = 1
            reactor.stop()

        d.addErrback(failed)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", node.stopService)
    reactor.run()
    return exit_code[0]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="zund", description="zund node daemon and tools.")
    parser.add_argument("command", choices=["serve", "peers", "dev-cluster"])
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns, rest = parser.parse_known_args(argv[:1])
    rest = argv[1:]
    if ns.command == "serve":
        return serve(rest)
    if ns.command == "peers":
        from zund.cmd import peers

        return peers.main(rest)
    if ns.command == "dev-cluster":
        from zund.cmd import devcluster

        return devcluster.main(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
