"""The local control socket (``<state_path>/control.sock``, mode 0600): operator
tools on this host (``zund peers``, ``zund events``) ask the daemon here. Not
exposed on the network.

``GET /events?since=N&limit=M&wait=S``: the journal's events after sequence ``N``
(``zund.events``); with ``wait`` and nothing new yet, the answer is held until an
event arrives or ``S`` seconds (at most :data:`MAX_WAIT_S`) pass — a long poll,
which is how ``zund events --follow`` follows without a streaming protocol.
"""

from __future__ import annotations

import json
from typing import Callable

from klein import Klein
from twisted.internet import defer

#: longest a follow request is held open (the client simply asks again)
MAX_WAIT_S = 30.0
#: most events in one answer
MAX_EVENTS = 1000


def _int_arg(request, name: str, default: int) -> int:
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        return default


class ControlAPI:
    app = Klein()

    def __init__(self, peers: Callable[[], list[dict]], events=None, clock=None,
                 services=None):
        """``events``: a ``zund.events.EventJournal`` (None: /events is empty);
        ``clock``: IReactorTime for the follow timeout; ``services``: this node's
        ``zund.cluster.healer.Healer`` for ``/drain`` (None: 501)."""
        self._peers = peers
        self._events = events
        self._clock = clock
        self._services = services

    def resource(self):
        return self.app.resource()

    @app.route("/peers", methods=["GET"])
    def peers(self, request):
        request.setHeader("Content-Type", "application/json")
        return json.dumps({"peers": self._peers()}).encode()

    @app.route("/drain", methods=["GET", "POST", "DELETE"])
    def drain(self, request):
        """``zund drain``: POST drains this node (``reason`` in the query), DELETE
        ends it, GET says where it is. Same as ``service disable``/``enable`` of
        this node's zun-compute service, without the API or a token."""
        request.setHeader("Content-Type", "application/json")
        svc = self._services
        if svc is None:
            request.setResponseCode(501)
            return json.dumps({"error": "drain is not available"}).encode()
        method = request.method.decode()
        if method == "GET":
            return json.dumps(svc.state_of(svc.node)).encode()
        reason = (request.args.get(b"reason", [b""])[0] or b"").decode("utf-8", "replace")
        d = defer.Deferred.fromCoroutine(svc.set_service_state(
            svc.node, disabled=(method == "POST"), reason=reason or None))
        d.addCallback(lambda state: json.dumps(state).encode())
        return d

    @app.route("/events", methods=["GET"])
    def events(self, request):
        request.setHeader("Content-Type", "application/json")
        since = _int_arg(request, "since", 0)
        limit = min(_int_arg(request, "limit", MAX_EVENTS) or MAX_EVENTS, MAX_EVENTS)
        wait_s = min(float(_int_arg(request, "wait", 0)), MAX_WAIT_S)
        journal = self._events
        if journal is None:
            return json.dumps({"events": [], "last_seq": 0}).encode()

        def answer():
            found = journal.since(since, limit)
            return json.dumps({"events": [e.to_json() for e in found],
                               "last_seq": journal.last_seq,
                               "dropped": journal.dropped}).encode()

        if journal.since(since, 1) or wait_s <= 0 or self._clock is None:
            return answer()
        # hold the answer until the next event or the timeout
        d = defer.Deferred()

        def fire(_event=None):
            if not d.called:
                unsubscribe()
                if timer.active():
                    timer.cancel()
                d.callback(None)

        unsubscribe = journal.subscribe(fire)
        timer = self._clock.callLater(wait_s, fire)
        request.notifyFinish().addErrback(lambda _f: fire())
        d.addCallback(lambda _: answer())
        return d
