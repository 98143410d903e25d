"""One-time console tokens: expiry, single use, binding to one container."""

import pytest
from twisted.internet.task import Clock

from zund.console.tokens import ConsoleTokenInvalid, TokenStore


def make_store(ttl_s=30.0, max_tokens=1024):
    clock = Clock()
    counter = iter(range(10**6))
    return clock, TokenStore(clock, ttl_s, max_tokens=max_tokens,
                             token_source=lambda: f"tok{next(counter)}")


def issue(store, container="c1", **kw):
    return store.issue(container=container, kind="exec", user_id="u", project_id="p",
                       **kw)


def test_a_token_redeems_once_for_its_container_and_caller():
    """A fresh token gives back its grant (container, caller, exec) exactly once."""
    _, store = make_store()
    token = issue(store, exec_id="e1")
    grant = store.redeem(token, "c1")
    assert (grant.container, grant.user_id, grant.project_id, grant.exec_id) == (
        "c1", "u", "p", "e1")
    with pytest.raises(ConsoleTokenInvalid, match="already used"):
        store.redeem(token, "c1")


def test_a_token_expires_after_its_ttl():
    """At ttl_s after issue the token is refused as expired."""
    clock, store = make_store(ttl_s=5.0)
    token = issue(store)
    clock.advance(5.0)
    with pytest.raises(ConsoleTokenInvalid, match="expired|unknown"):
        store.redeem(token, "c1")


def test_a_token_used_for_another_container_is_refused_and_burnt():
    """Naming another container refuses the token and spends it (no guessing)."""
    _, store = make_store()
    token = issue(store)
    with pytest.raises(ConsoleTokenInvalid, match="another container"):
        store.redeem(token, "c2")
    with pytest.raises(ConsoleTokenInvalid, match="already used"):
        store.redeem(token, "c1")


def test_missing_and_unknown_tokens_are_refused():
    """No token or a made-up one is refused."""
    _, store = make_store()
    for token in (None, "", "nope"):
        with pytest.raises(ConsoleTokenInvalid):
            store.redeem(token, "c1")


def test_the_store_is_bounded_oldest_first():
    """Beyond max_tokens the oldest unredeemed token is dropped."""
    _, store = make_store(max_tokens=2)
    first, second, third = issue(store), issue(store), issue(store)
    assert len(store) == 2
    with pytest.raises(ConsoleTokenInvalid):
        store.redeem(first, "c1")
    assert store.redeem(third, "c1").container == "c1"
    assert store.redeem(second, "c1").container == "c1"
