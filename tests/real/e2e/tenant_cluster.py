"""Helpers of the tenant matrix (tests/real/e2e/test_tenant_matrix.py): the real
Keystone's users as API callers (one token per user, fetched once and reused), a
3-node ``auth_strategy = keystone`` cluster of real ``zund serve`` processes, and
parallel requests.

Only loopback addresses are ever contacted: the nodes bind 127.0.0.1..3 and the
Keystone of tools/keystone.sh listens on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Callable, Iterable

import attrs
import requests

from .keystone import Keystone
from tests.support.nodeproc import ZundProcess, free_port, start_cluster

#: a microversion every route of the matrix exists at, unless its row names another
DEFAULT_VERSION = "1.40"


@attrs.frozen
class Caller:
    """One Keystone user scoped to one project, with a token issued once."""

    user: str
    project: str
    project_id: str
    user_id: str
    token: str


def issue_callers(keystone: Keystone, users: Iterable[tuple[str, str]]) -> dict[str, Caller]:
    """{user: Caller} for ``(user, project)`` pairs: one password authentication each."""
    out = {}
    for user, project in users:
        session = keystone.session(user, project)
        out[user] = Caller(user=user, project=project, token=session.get_token(),
                           project_id=session.get_project_id(),
                           user_id=session.get_user_id())
    return out


def start_keystone_cluster(workdir: str, keystone: Keystone, admin: Caller, n: int = 3,
                           tag: str = "tm") -> list[ZundProcess]:
    """n real nodes (fake runtime) authenticating with ``keystone``; ``admin``'s
    token is used to watch the cluster converge."""
    # the compute API too, on one free port of 127.0.0.1..n (the Nova matrix)
    nova_port = free_port("127.0.0.1")
    extra = {**keystone.node_config(), "nova_api": {"port": str(nova_port)}}
    nodes = start_cluster(workdir, n, tag, runtimes="fake", extra=extra, token=admin.token)
    for node in nodes:
        node.nova_port = nova_port
    return nodes


@attrs.frozen
class Answer:
    status: int
    body: object  # decoded JSON, or the text when it is not JSON
    headers: dict


def call(node: ZundProcess, caller: Caller | None, method: str, path: str, *,
         version: str = DEFAULT_VERSION, query: dict | None = None, body=None,
         headers: dict | None = None, timeout_s: float = 60.0) -> Answer:
    """One request to ``node``'s API (``path`` below ``/v1``) as ``caller``."""
    h = {"OpenStack-API-Version": f"container {version}"}
    if caller is not None:
        h["X-Auth-Token"] = caller.token
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    r = requests.request(method, node.endpoint + path, params=query, json=body, headers=h,
                         timeout=timeout_s)
    try:
        decoded = r.json()
    except ValueError:
        decoded = r.text
    return Answer(r.status_code, decoded, dict(r.headers))


def nova_call(node: ZundProcess, caller: Caller | None, method: str, path: str, *,
              body=None, headers: dict | None = None, timeout_s: float = 60.0) -> Answer:
    """One request to ``node``'s compute API (``path`` below ``/v2.1``) as ``caller``."""
    h = {"OpenStack-API-Version": "compute 2.100"}
    if caller is not None:
        h["X-Auth-Token"] = caller.token
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    r = requests.request(method, f"http://{node.host_ip}:{node.nova_port}/v2.1{path}",
                         json=body, headers=h, timeout=timeout_s)
    try:
        decoded = r.json()
    except ValueError:
        decoded = r.text
    return Answer(r.status_code, decoded, dict(r.headers))


def nova_fault(answer: Answer) -> tuple[str, str]:
    """(fault name, message) of a Nova fault body (("", "") when there is none)."""
    if isinstance(answer.body, dict) and len(answer.body) == 1:
        (name, inner), = answer.body.items()
        if isinstance(inner, dict):
            return name, str(inner.get("message", ""))
    return "", ""


def run_parallel(jobs: list[tuple[object, Callable[[], object]]], per_key: int = 2,
                 workers: int = 6) -> list:
    """Results of ``(key, job)`` pairs in order, on a bounded thread pool, at most
    ``per_key`` jobs of one key (one node) at a time.

    Why per node: without memcached, keystonemiddleware's token cache is one dict
    per pooled cache client, and each concurrent request takes its own client —
    so N parallel requests to a node validate the same token with Keystone N
    times. Two at a time per node keeps the matrix fast and Keystone idle."""
    gates: dict = {}
    for key, _ in jobs:
        gates.setdefault(key, threading.BoundedSemaphore(per_key))

    def run(pair):
        key, job = pair
        with gates[key]:
            return job()

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, jobs))


def warm_tokens(nodes: list[ZundProcess], callers: Iterable[Caller]) -> None:
    """Each node validates each caller's token once (nodes in parallel, callers in
    turn), so the tests' own requests meet a warm token cache."""
    callers = list(callers)

    def warm(node):
        for caller in callers:
            answer = call(node, caller, "GET", "/availability_zones")
            assert answer.status == 200, (node.name, caller.user, answer)

    run_parallel([(node.name, lambda n=node: warm(n)) for node in nodes])


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str,
               interval_s: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (and return that), or
    fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def error_detail(answer: Answer) -> str:
    """The ``detail`` of a Zun ``errors`` body ('' when there is none)."""
    if isinstance(answer.body, dict) and answer.body.get("errors"):
        return str(answer.body["errors"][0].get("detail", ""))
    return ""
