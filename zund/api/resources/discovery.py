"""Discovery: ``/``, ``/v1`` and ``/healthcheck`` (no token needed)."""

from __future__ import annotations

from zund.api import microversions, views
from zund.api.pipeline import ApiRequest, Reply, route


class DiscoveryResource:
    """Routes of ``/``, ``/v1`` and ``/healthcheck``; mixed into ``zund.api.app.ZunAPI``
    (uses ``ApiBase``)."""

    @route("/", ["GET"], versioned=False, public=True)
    async def root(self, req: ApiRequest):
        return views.discovery(req.base_url, str(microversions.MIN_VERSION),
                               str(microversions.MAX_VERSION))

    @route("/v1", ["GET"], public=True)
    async def v1(self, req: ApiRequest):
        return views.v1_root(req.base_url)

    @route("/healthcheck", ["GET", "HEAD"], versioned=False, public=True)
    async def healthcheck(self, req: ApiRequest):
        return Reply(200, b"OK", {"Content-Type": "text/plain"})
