"""The pipeline's direct dispatch table answers exactly as Klein's werkzeug map."""

from __future__ import annotations

import re

import zund.api.app  # noqa: F401  (registers every resource's routes)
from zund.api import pipeline


def _werkzeug(method: str, path: str):
    try:
        endpoint, args = pipeline.APP.url_map.bind("localhost").match(path, method=method)
    except Exception:
        return None
    return re.sub(r"_[0-9]+$", "", endpoint), args


def _sample_paths() -> set[str]:
    paths = {"/", "//", "/v1", "/v1/", "/nope", "/v1/containers//", "/v1//containers"}
    for rule in pipeline.APP.url_map.iter_rules():
        for value in ("abc", "put_archive", "search", "v1", "containers"):
            path = re.sub(r"<[^>]+>", value, rule.rule)
            paths.update({path, path + "/", path + "/x", path.rstrip("/") + "/a/b",
                          path.rpartition("/")[0] or "/"})
    return paths


def test_direct_table_picks_the_handler_and_arguments_werkzeug_picks():
    """For every route's spellings and near misses, a direct match is werkzeug's match."""
    checked = 0
    for path in sorted(_sample_paths()):
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            parts = path[1:].split("/")
            found = pipeline._fast_match(method.encode(), parts)
            if found is None:
                continue
            handler, _spec, args = found
            assert _werkzeug(method, path) == (handler.__name__, args), (method, path)
            checked += 1
    assert checked > 200


def test_direct_table_covers_the_hot_container_routes():
    """POST /v1/containers, GET /v1/containers/<id> and /healthcheck skip Klein."""
    assert pipeline._fast_match(b"POST", ["v1", "containers"])[0].__name__ == \
        "container_create"
    assert pipeline._fast_match(b"GET", ["v1", "containers", "c1"])[2] == {"ident": "c1"}
    assert pipeline._fast_match(b"GET", ["healthcheck"]) is not None
    # an empty argument or a path under a route the table cannot express: Klein
    assert pipeline._fast_match(b"GET", ["v1", "containers", "", "logs"]) is None
    assert pipeline._fast_match(b"GET", ["v1", "images", "busybox", "search"]) is None


def test_only_an_archive_path_asks_the_url_map_for_its_body_limit():
    """The listener's body limit is the ordinary one unless the target may be put_archive."""
    assert not pipeline._may_have_own_limit(b"/v1/containers")
    assert not pipeline._may_have_own_limit(b"/v1/containers/x/start?run=true")
    assert pipeline._may_have_own_limit(b"/v1/containers/x/put_archive?path=/")
    assert pipeline._may_have_own_limit(b"/v1/containers/x/put_archive/")
    assert pipeline._may_have_own_limit(b"/v1/containers/x/put%5Farchive")
