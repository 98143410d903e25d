"""Images (admin, as in Zun): ``/v1/images`` — pull onto a named host, list every
node's image records, show, delete (409 while a container uses the image), and
search the local engine or Glance. The images are asked of an ``IImages``
(``zund.images``): this node's, or the whole cluster's."""

from __future__ import annotations

from zund.api import schemas, views
from zund.api.pipeline import ApiRequest, Reply, paginate, route
from zund.common import errors

#: Zun's image keys, then zund's additions (the pull's outcome, the driver)
IMAGE_KEYS = ("uuid", "host", "repo", "tag", "image_id", "size", "project_id",
              "status", "status_reason", "image_driver", "created_at", "updated_at")
IMAGE_SORT_KEYS = ("uuid", "host", "repo", "tag", "image_id", "size", "project_id",
                   "status", "created_at")
_PULL_KEYS = ("repo", "host", "image_driver")


def image_view(rec, base_url: str) -> dict:
    d = rec.to_dict()
    d["image_driver"] = d.pop("driver")
    out = {k: d.get(k) for k in IMAGE_KEYS}
    out["links"] = [{"href": f"{base_url}/v1/images/{rec.uuid}", "rel": "self"},
                    {"href": f"{base_url}/images/{rec.uuid}", "rel": "bookmark"}]
    return out


class ImagesResource:
    """Routes of ``/images``; mixed into ``zund.api.app.ZunAPI`` (uses ``ApiBase``)."""

    def _images_or_501(self):
        if self._images is None:
            raise errors.NotImplementedYet(what="Images")
        return self._images

    @route("/images", ["GET"])
    async def image_list(self, req: ApiRequest):
        query = schemas.parse_list_query(req.params, max_limit=self._config.max_limit,
                                         sort_keys=IMAGE_SORT_KEYS,
                                         default_sort_key="created_at")
        self._policy.authorize(req.ctx, "image:get_all")
        if self._images is None:
            return views.collection("images", [], None)
        listing = await self._images.list(req.ctx)
        items = [image_view(r, req.base_url) for r in listing.records]
        page = paginate(items, query, lambda it, k: it.get(k), lambda it: it["uuid"])
        next_url = views.next_link(req.base_url, "images", page, query.limit,
                                   query.sort_key, query.sort_dir)
        body = views.collection("images", page, next_url)
        if listing.partial_nodes:
            return Reply(200, body, {"Zund-Partial-Nodes": ",".join(sorted(
                listing.partial_nodes))})
        return body

    @route("/images", ["POST"])
    async def image_pull(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "image:pull")
        body = req.body
        if not isinstance(body, dict):
            raise schemas.invalid("body", "expected a JSON object")
        schemas.check_unknown(body, _PULL_KEYS)
        repo = body.get("repo")
        if not isinstance(repo, str) or not 2 <= len(repo) <= 255 or repo != repo.strip():
            raise schemas.invalid("repo", "an image name of 2-255 characters is required")
        host = body.get("host")
        if host is not None and (not isinstance(host, str) or not host):
            raise schemas.invalid("host", "must be a host name")
        driver = body.get("image_driver")
        if driver is not None and driver not in ("docker", "glance"):
            raise schemas.invalid("image_driver", "must be one of docker, glance")
        rec = await self._images_or_501().pull(req.ctx, repo, host, driver)
        return Reply(202, image_view(rec, req.base_url),
                     {"Location": f"{req.base_url}/v1/images/{rec.uuid}"})

    @route("/images/<ident>", ["GET"])
    async def image_show(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "image:get_one")
        rec = await self._images_or_501().show(req.ctx, ident)
        return image_view(rec, req.base_url)

    @route("/images/<ident>", ["DELETE"])
    async def image_delete(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "image:delete")
        await self._images_or_501().delete(req.ctx, ident)
        return Reply(204)

    @route("/images/<path:image>/search", ["GET"])
    async def image_search(self, req: ApiRequest, image: str):
        schemas.check_unknown(req.params, ("image_driver", "exact_match"))
        self._policy.authorize(req.ctx, "image:search")
        driver = req.params.get("image_driver") or None
        if driver is not None and driver not in ("docker", "glance"):
            raise schemas.invalid("image_driver", "must be one of docker, glance")
        exact = schemas.parse_bool(req.params.get("exact_match") or False, "exact_match")
        return await self._images_or_501().search(req.ctx, image, driver, exact)
