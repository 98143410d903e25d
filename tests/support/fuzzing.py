"""Hypothesis strategies for fuzzing every route of the Zun API (shared by
tests/sim/api/test_fuzz.py and tests/sim/whole_cluster/test_fuzz_sim.py).

The route list is derived from the Klein app's url_map, so a route added later is
fuzzed without touching this file. A request is (method, path, query, headers,
body): URL arguments name a real container or are hostile text; query strings
and bodies mix the API's own parameter names with hostile values (integers past
64 bits, lone surrogates, NUL, deep nesting, NaN, malformed JSON, huge digit
strings); the microversion header is valid, out of range or garbage."""

from __future__ import annotations

import collections
import json
import re
from urllib.parse import quote, quote_from_bytes

import attrs
from hypothesis import strategies as st

from zund.api import schemas
from zund.api.app import ZunAPI  # noqa: F401  (registers every resource's routes)
from zund.api.pipeline import APP

_ARG = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


@attrs.frozen
class Route:
    """One handler: its spellings (url_map rules) and methods."""

    name: str
    rules: tuple[str, ...]
    methods: tuple[str, ...]


def routes() -> list[Route]:
    """Every handler of the API app, from the url_map (HEAD and OPTIONS excluded:
    werkzeug adds them to every GET)."""
    rules: dict[str, list] = collections.OrderedDict()
    methods: dict[str, set] = collections.defaultdict(set)
    for rule in APP.url_map.iter_rules():
        name = rule.endpoint.rsplit("_", 1)[0]
        rules.setdefault(name, []).append(rule.rule)
        methods[name] |= set(rule.methods or ()) - {"HEAD", "OPTIONS"}
    return [Route(name, tuple(dict.fromkeys(r)), tuple(sorted(methods[name])))
            for name, r in rules.items()]


def route_params() -> list[tuple[str, str]]:
    """(route name, method) pairs, for pytest.mark.parametrize ids."""
    return [(r.name, m) for r in routes() for m in r.methods]


ROUTES = {r.name: r for r in routes()}

# -- hostile scalars ------------------------------------------------------------------

HOSTILE_INTS = st.sampled_from([2 ** 63, 2 ** 64, 2 ** 64 + 1, -(2 ** 63) - 1, 2 ** 100,
                                10 ** 30, -1, 0, 2 ** 63 - 1])
HOSTILE_TEXT = st.sampled_from(["\ud800", "a\udfffb", "\x00", "a\x00b", "", " ", "None",
                                "all", "true", "-1", "1" * 4400, "9" * 40, "1e999",
                                "%s", "{}", "../..", "💥", "\u202e", "x" * 300])
text = st.text(max_size=20) | HOSTILE_TEXT
integers = st.integers(min_value=-(2 ** 70), max_value=2 ** 70) | HOSTILE_INTS
scalars = (st.none() | st.booleans() | integers | text
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(text, children, max_size=4), max_leaves=12)

#: every parameter name the API reads from a query or body
PARAM_NAMES = sorted(set(schemas._CREATE_PROPERTIES) | set(schemas.UPDATE_FIELDS) | {
    "limit", "marker", "sort_key", "sort_dir", "all_projects", "run", "stop", "force",
    "signal", "timeout", "path", "data", "command", "interactive", "stdout", "stderr",
    "timestamps", "tail", "since", "ps_args", "height", "width", "exec_id", "repository",
    "tag", "image", "host", "network", "port", "fixed_ip", "security_group", "containers",
    "cpu", "memory", "disk", "name", "status", "project_id", "user_id", "task_state",
    "auto_remove", "exact_match", "image_driver"})
param_names = st.sampled_from(PARAM_NAMES) | text

#: the fields of a create body, each with a hostile or plausible value
create_like = st.dictionaries(st.sampled_from(sorted(schemas._CREATE_PROPERTIES)), json_values,
                              max_size=6).map(lambda d: {"image": "zund-test/busybox", **d})
nested_hostile = st.sampled_from([
    {"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 2 ** 70}},
    {"healthcheck": {"cmd": "true", "interval": 2 ** 70}},
    {"hints": {"k": 2 ** 64}}, {"hints": {"\ud800": "v"}}, {"hints": {"k": "\ud800"}},
    {"labels": {"\ud800": "v"}}, {"labels": {"k": "\ud800"}},
    {"environment": {"\ud800": "v"}}, {"image": "ima\ud800ge"},
    {"name": "na\ud800me"}, {"cpu": 2 ** 70}, {"memory": 2 ** 70}, {"disk": "9" * 5000},
    {"exposed_ports": {"9" * 50 + "/tcp": {}}},
]).map(lambda d: {"image": "zund-test/busybox", **d})
dict_bodies = st.dictionaries(param_names, json_values, max_size=5)
RAW_BODIES = st.sampled_from([
    b"{", b"NaN", b"[" * 5000 + b"]" * 5000, b'{"a": 1e999}', b"9" * 5000, b'"\\ud800"',
    b'{"image": Infinity}', b"\xff\xfe", b'{"\\u0000": 1}', b"{}", b"[]", b"null", b"0",
    b'{"image": "x", "image": "y"}', b'{"data": "' + b"A" * 2000 + b'"}'])


@st.composite
def bodies(draw):
    """-> bytes or None (no body)."""
    kind = draw(st.sampled_from(["none", "create", "hostile", "hostile", "dict", "dict",
                                 "json", "raw"]))
    if kind == "none":
        return None
    if kind == "raw":
        return draw(RAW_BODIES | st.binary(max_size=40))
    value = draw({"create": create_like, "hostile": nested_hostile, "dict": dict_bodies,
                  "json": json_values}[kind])
    # ensure_ascii keeps lone surrogates as \\ud800 escapes, as an attacker sends them
    return json.dumps(value).encode("ascii")


def _quote_text(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


query_values = (text.map(_quote_text) | integers.map(str)
                | st.binary(max_size=8).map(lambda b: quote_from_bytes(b, safe="")))


@st.composite
def queries(draw) -> str:
    pairs = draw(st.lists(st.tuples(param_names.map(_quote_text), query_values), max_size=4))
    return "&".join(f"{k}={v}" for k, v in pairs)


def mostly(good, bad):
    """``good`` four times in five: hostile headers must not keep every request from
    reaching the handlers."""
    return st.integers(0, 4).flatmap(lambda n: good if n else bad)


VERSIONS = mostly(st.integers(1, 45).map(lambda n: f"container 1.{n}"),
                  st.none() | st.sampled_from([
                      "container latest", "container 1.999", "container 99.0", "container",
                      "compute 1.1", "container 1.\ud800", "container 01.01",
                      "container -1.5", "garbage", "container 1." + "9" * 5000]))
TOKENS = mostly(st.sampled_from(["admin:demo", "alice:projA"]),
                st.sampled_from([None, "", "a:b:c", "x" * 300]))
CONTENT_TYPES = mostly(st.just("application/json"),
                       st.sampled_from(["text/plain", "application/octet-stream", None]))


@attrs.frozen
class FuzzRequest:
    method: str
    path: str  # with query string
    headers: dict  # name -> str (latin-1 safe)
    body: bytes | None


def _header_safe(value: str) -> str:
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


@st.composite
def requests_for(draw, route: Route, method: str, idents: tuple[str, ...],
                 versions=None, body_strategy=None):
    """One request to ``route`` with ``method``; URL arguments are drawn from
    ``idents`` (a real container's name and uuid) or hostile text. ``versions``
    and ``body_strategy`` replace VERSIONS and bodies() (the compute API's fuzz)."""
    rule = draw(st.sampled_from(route.rules))
    arg = st.sampled_from(idents) | text.filter(lambda t: t != "")

    def fill(match):
        return _quote_text(draw(arg))

    path = _ARG.sub(fill, rule)
    query = draw(queries())
    headers = {}
    version = draw(versions if versions is not None else VERSIONS)
    if version is not None:
        headers["OpenStack-API-Version"] = _header_safe(version)
    token = draw(TOKENS)
    if token is not None:
        headers["X-Auth-Token"] = token
    ctype = draw(CONTENT_TYPES)
    if ctype is not None:
        headers["Content-Type"] = ctype
    return FuzzRequest(method, path + (f"?{query}" if query else ""), headers,
                       draw(body_strategy if body_strategy is not None else bodies()))


def check_answer(status: int, headers: dict, body: bytes, request: FuzzRequest) -> None:
    """The fuzz oracle: no 5xx (501 is zund's declared answer for a Zun feature it
    does not provide), and every error in Zun's ``errors`` format."""
    if status == 501:
        error = json.loads(body)["errors"][0]
        assert error["code"] == "container.not-implemented-yet", (request, body)
        return
    assert status < 500, f"{status} for {request}: {body[:500]!r}"
    if status >= 400 and request.method != "HEAD":
        errors_ = json.loads(body)["errors"]
        assert len(errors_) == 1 and errors_[0]["status"] == status, body
