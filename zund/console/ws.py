"""The websocket adapters (autobahn, Twisted flavour).

Server: what python-zunclient's ``websocketclient`` connects to — ``ws://<node>:
<console port>/?token=<one-time token>&uuid=<container uuid>``, offering the
subprotocols ``binary`` and ``base64`` (Zun's wsproxy speaks the same); keystrokes
arrive as binary messages, output leaves as binary messages of whole UTF-8
characters. A refused handshake is an HTTP error with the reason: 403 (token
unknown, used, expired or for another container), 503 (the node's session cap).

Client: the relay hop from an entry node to the owner's console listener, with the
owner's own one-time token (issued to the caller through a signed, sealed
``OWNER_CALL console_open``).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlparse

from autobahn.twisted.websocket import (WebSocketClientFactory, WebSocketClientProtocol,
                                        WebSocketServerFactory, WebSocketServerProtocol)
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import endpoints
from twisted.logger import Logger

from zund.common import errors
from zund.console import session as sess
from zund.console.streams import RelayStream
from zund.console.tokens import ConsoleTokenInvalid

log = Logger(namespace="zund.console")

#: the longest close reason RFC 6455 allows (123 bytes of UTF-8)
_MAX_REASON = 123


def _reason(text: str) -> str:
    raw = text.encode("utf-8")[:_MAX_REASON]
    return raw.decode("utf-8", "ignore")


class ConsoleServerProtocol(WebSocketServerProtocol):
    """One client websocket; ``factory.console`` is the node's ConsoleService."""

    session = None
    _base64 = False
    _grant = None

    def onConnect(self, request):
        console = self.factory.console
        token = (request.params.get("token") or [None])[0]
        uuid = (request.params.get("uuid") or [None])[0]
        try:
            self._grant = console.redeem(token, uuid)
        except ConsoleTokenInvalid as e:
            raise ConnectionDeny(403, str(e)) from e
        except errors.ServiceUnavailable as e:
            raise ConnectionDeny(503, str(e)) from e
        offered = list(request.protocols or ())
        if "binary" in offered or not offered:
            return "binary" if offered else None
        if "base64" in offered:
            self._base64 = True
            return "base64"
        console.release_unopened(self._grant)
        self._grant = None
        raise ConnectionDeny(400, "subprotocol binary or base64 required")

    def onOpen(self):
        self.session = self.factory.console.start_session(self._grant, self)

    def onMessage(self, payload, isBinary):
        if self.session is None:
            return
        if self._base64 and not isBinary:
            try:
                payload = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return  # not base64: dropped, as hostile input is
        self.session.from_client(payload)

    def onClose(self, wasClean, code, reason):
        if self.session is not None:
            self.session.client_ended()
        elif self._grant is not None:
            self.factory.console.release_unopened(self._grant)
            self._grant = None

    # -- what ConsoleSession calls ---------------------------------------------------

    def send(self, data: bytes) -> None:
        if self._base64:
            self.sendMessage(base64.b64encode(data), isBinary=False)
        else:
            self.sendMessage(data, isBinary=True)

    def close(self, code: int, reason: str) -> None:
        if code != 1000 and not 3000 <= code <= 4999:  # what a server may send
            code = sess.CLOSE_BACKEND_FAILED
        self.sendClose(code, _reason(reason))


def server_factory(console) -> WebSocketServerFactory:
    factory = WebSocketServerFactory()
    factory.protocol = ConsoleServerProtocol
    factory.console = console
    # keystrokes are small; a console needs no big frames
    # a connection that does not complete its handshake in time is dropped
    factory.setProtocolOptions(maxFramePayloadSize=1024 * 1024,
                               maxMessagePayloadSize=1024 * 1024,
                               openHandshakeTimeout=10.0, closeHandshakeTimeout=5.0,
                               autoPingInterval=0)
    return factory


class RelayClientProtocol(WebSocketClientProtocol):
    """The entry node's websocket to the owner; ``factory.relay`` is the RelayStream."""

    def onOpen(self):
        self.factory.relay.opened(self)

    def onMessage(self, payload, isBinary):
        self.factory.relay.received(payload)

    def onClose(self, wasClean, code, reason):
        self.factory.relay.closed(wasClean, code, reason)


def connect_relay(reactor, relay: RelayStream, url: str, timeout_s: float):
    """Open the relay websocket to ``url`` (the owner's console URL with its token)."""
    parsed = urlparse(url)
    factory = WebSocketClientFactory(url, protocols=["binary"])
    factory.protocol = RelayClientProtocol
    factory.relay = relay
    factory.setProtocolOptions(openHandshakeTimeout=timeout_s, autoPingInterval=0)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, parsed.hostname, parsed.port or 80,
                                            timeout=timeout_s)
    d = endpoint.connect(factory)
    d.addErrback(lambda f: relay.connect_failed(f.getErrorMessage()))
    return d
