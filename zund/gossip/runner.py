"""``python -m zund.gossip.runner``: one gossip node plus a localhost control port.

A development and benchmarking tool (and a sketch of ``zund peers``) until
``zund serve`` exists.  The control port speaks HTTP/JSON on 127.0.0.1 only:

- ``GET  /members``   -> ``[MemberView.to_json(), ...]``
- ``GET  /stats``     -> the service's stats dict plus ``awareness`` (Lifeguard local health score)
- ``POST /metadata``  body = raw bytes -> sets this node's metadata blob
- ``GET  /events``    -> the last member events seen here, oldest first:
  ``[[monotonic_s, kind, member, incarnation, awareness_score], ...]``
  (``time.monotonic()`` is system-wide, so a benchmark on the same host can
  line them up with its own clock; bounded to the last 512)
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time

from twisted.logger import globalLogBeginner, textFileLogObserver, FilteringLogObserver, LogLevelFilterPredicate, LogLevel
from twisted.web import resource, server

from zund.gossip import config as gossip_config
from zund.gossip.keyring import Keyring
from zund.gossip.member import parse_addr
from zund.gossip.service import GossipService


class _Members(resource.Resource):
    isLeaf = True

    def __init__(self, gossip: GossipService, events=()):
        super().__init__()
        self.gossip = gossip
        self.events = events

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        if request.path == b"/stats":
            return json.dumps(dict(self.gossip.stats, awareness=self.gossip.local_health)).encode()
        if request.path == b"/events":
            return json.dumps(list(self.events)).encode()
        return json.dumps([m.to_json() for m in self.gossip.members()]).encode()

    def render_POST(self, request):
        if request.path != b"/metadata":
            request.setResponseCode(404)
            return b"{}"
        blob = request.content.read(4096)
        try:
            self.gossip.set_metadata(blob)
        except ValueError as e:
            request.setResponseCode(400)
            return json.dumps({"error": str(e)}).encode()
        return b'{"ok": true}'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", required=True, help="host:port (UDP and TCP)")
    parser.add_argument("--advertise", default=None)
    parser.add_argument("--seeds", default="", help="comma separated host:port")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--control-host", default="127.0.0.1")
    parser.add_argument("--profile", default="lan", choices=gossip_config.PROFILES)
    parser.add_argument("--cluster-name", default="zund")
    parser.add_argument("--key", action="append", default=[], help="base64 key; repeat; first is primary")
    parser.add_argument("--log-level", default="warn")
    args = parser.parse_args(argv)

    from twisted.internet import reactor  # the runner is a process entry point, like zund/cmd

    level = LogLevel.levelWithName(args.log_level)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=level)])])
    bind = parse_addr(args.bind)
    advertise = parse_addr(args.advertise) if args.advertise else bind
    seeds = [parse_addr(s) for s in args.seeds.split(",") if s.strip()]
    gossip = GossipService(gossip_config.from_values(args.profile, args.cluster_name), args.name, bind,
                           advertise, seeds, Keyring.from_base64(args.key), reactor, random.Random())
    if not args.control_host.startswith("127."):
        parser.error("the control port only binds to 127.0.0.0/8")
    events: collections.deque = collections.deque(maxlen=512)
    gossip.add_listener(lambda kind, member: events.append(
        (time.monotonic(), kind, member.name, member.incarnation, gossip.local_health)))
    reactor.listenTCP(args.control_port, server.Site(_Members(gossip, events)), interface=args.control_host)
    reactor.callWhenRunning(gossip.startService)
    reactor.addSystemEventTrigger("before", "shutdown", gossip.stopService)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
