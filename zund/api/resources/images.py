"""Images: zund keeps no image records (images live in each node's runtime)."""

from __future__ import annotations

from zund.api import schemas, views
from zund.api.pipeline import ApiRequest, route


class ImagesResource:
    """Routes of ``/images``; mixed into ``zund.api.app.ZunAPI`` (uses ``ApiBase``)."""

    @route("/images", ["GET"])
    async def image_list(self, req: ApiRequest):
        schemas.parse_list_query(req.params, max_limit=self._config.max_limit,
                                 sort_keys=("id", "repo", "tag"), default_sort_key="id")
        self._policy.authorize(req.ctx, "image:get_all")
        # zund keeps no image records: images live in each node's runtime
        return views.collection("images", [], None)
