"""What python-openstackclient needs besides the compute API when it runs with
``OS_AUTH_TYPE=none``: ``openstack server list/create`` build an identity (v3)
and an image (v2) proxy, which run version discovery first. This stub answers
that discovery on 127.0.0.1 and, for the image service, treats a Docker image
reference as an image whose id is its name (zund boots local Docker images by
name; with a real Glance, ``imageRef`` is the Glance id instead). Nothing else:
the tests with a real Keystone catalog do not use it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def _image(name: str) -> dict:
    return {"id": name, "name": name, "status": "active", "visibility": "public",
            "container_format": "docker", "disk_format": "raw", "min_disk": 0,
            "min_ram": 0, "size": None, "tags": [], "properties": {}}


class _Handler(BaseHTTPRequestHandler):
    images: tuple = ()

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's spelling)
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        base = f"http://{self.headers['Host']}"
        if path == "/identity/v3":
            return self._send(200, {"version": {
                "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}})
        if path in ("/image", "/image/v2"):
            return self._send(200, {"versions": [{
                "id": "v2.16", "status": "CURRENT",
                "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}]})
        if path == "/image/v2/images":
            names = parse_qs(url.query).get("name")
            found = [_image(n) for n in (names or self.images) if n in self.images]
            return self._send(200, {"images": found, "first": "/v2/images",
                                    "schema": "/v2/schemas/images"})
        if path.startswith("/image/v2/images/"):
            name = unquote(path[len("/image/v2/images/"):])
            if name in self.images:
                return self._send(200, _image(name))
        return self._send(404, {"message": "not found"})


class CatalogStub:
    """Start with ``start()``; ``identity_url`` and ``image_url`` for OS_*."""

    def __init__(self, images: tuple[str, ...]):
        handler = type("Handler", (_Handler,), {"images": tuple(images)})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        port = self.server.server_address[1]
        self.identity_url = f"http://127.0.0.1:{port}/identity/v3"
        self.image_url = f"http://127.0.0.1:{port}/image/v2"

    def start(self) -> "CatalogStub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
