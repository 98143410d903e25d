"""The local control socket (``<state_path>/control.sock``, mode 0600): operator
tools on this host (``zund peers``) ask the daemon here. Not exposed on the network."""

from __future__ import annotations

import json
from typing import Callable

from klein import Klein


class ControlAPI:
    app = Klein()

    def __init__(self, peers: Callable[[], list[dict]]):
        self._peers = peers

    def resource(self):
        return self.app.resource()

    @app.route("/peers", methods=["GET"])
    def peers(self, request):
        request.setHeader("Content-Type", "application/json")
        return json.dumps({"peers": self._peers()}).encode()
