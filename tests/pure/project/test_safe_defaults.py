"""Safe defaults (issue 10): a noauth API and a keyless cluster stay on loopback
unless the operator opts in; `zund keygen` makes the key that lifts the second rule."""

from __future__ import annotations

import base64
import io

import pytest

from zund.cmd import main as cmd_main
from zund.conf import make_conf
from zund.conf.safety import LOOPBACK, UnsafeConfig, listen_plan, plan_from_conf

KEY = base64.b64encode(b"k" * 32).decode()


def conf_with(*overrides):
    conf = make_conf()
    conf([])
    for name, value, group in overrides:
        conf.set_override(name, value, group)
    return conf


def plan(**kw):
    args = dict(auth_strategy="noauth", api_host="127.0.0.1", allow_noauth_remote=False,
                has_cluster_keys=False, allow_insecure=False, peer_host="0.0.0.0",
                gossip_host="0.0.0.0", seeds=(), advertise_hosts=())
    args.update(kw)
    return listen_plan(**args)


def test_all_defaults_expose_nothing_beyond_loopback():
    """An all-defaults config binds the API, peer RPC and gossip to 127.0.0.1."""
    p = plan_from_conf(conf_with())
    assert (p.api_host, p.peer_host, p.gossip_host) == (LOOPBACK, LOOPBACK, LOOPBACK)


def test_noauth_api_on_another_address_falls_back_to_loopback_with_a_warning():
    """noauth + host_ip = 0.0.0.0 without the opt-in binds 127.0.0.1 and says why."""
    p = plan(api_host="0.0.0.0", has_cluster_keys=True)
    assert p.api_host == LOOPBACK
    assert any("allow_noauth_remote" in w for w in p.warnings)


def test_noauth_api_on_another_address_with_the_opt_in_binds_it_loudly():
    """host_ip set AND allow_noauth_remote = true: the address is used, with a warning."""
    p = plan_from_conf(conf_with(("host_ip", "192.0.2.7", "api"),
                                 ("allow_noauth_remote", True, "api"),
                                 ("keys", [KEY], "gossip")))
    assert p.api_host == "192.0.2.7"
    assert any("UNAUTHENTICATED" in w for w in p.warnings)


def test_keystone_api_binds_the_configured_address_without_warning():
    """With keystone the API binds host_ip as set."""
    p = plan(auth_strategy="keystone", api_host="0.0.0.0", has_cluster_keys=True)
    assert p.api_host == "0.0.0.0" and p.warnings == ()


def test_keyless_node_refuses_non_loopback_seeds():
    """No [gossip] keys and a seed on another host: UnsafeConfig naming keygen and the opt-in."""
    with pytest.raises(UnsafeConfig) as e:
        plan(seeds=["127.0.0.2:9519", "192.0.2.1:9519"])
    assert "192.0.2.1" in str(e.value) and "127.0.0.2" not in str(e.value)
    assert "zund keygen" in str(e.value) and "allow_insecure" in str(e.value)


def test_keyless_node_refuses_a_non_loopback_advertised_address():
    """No keys and advertise_host on another address: refused."""
    with pytest.raises(UnsafeConfig):
        plan_from_conf(conf_with(("advertise_host", "192.0.2.9", "gossip")))


def test_keyless_node_binds_peer_rpc_and_gossip_to_loopback():
    """No keys: explicit non-loopback binds become 127.0.0.1, with a warning naming them."""
    p = plan(peer_host="192.0.2.3", gossip_host="192.0.2.3", seeds=["localhost:9519"])
    assert (p.peer_host, p.gossip_host) == (LOOPBACK, LOOPBACK)
    assert any("[peer] host_ip = 192.0.2.3" in w for w in p.warnings)


def test_keyless_dev_cluster_addresses_are_allowed():
    """Loopback addresses other than 127.0.0.1 (a dev cluster) pass unchanged."""
    p = plan(peer_host="127.0.0.3", gossip_host="127.0.0.3", seeds=["127.0.0.1:9519", "[::1]:9519"])
    assert (p.peer_host, p.gossip_host, p.warnings) == ("127.0.0.3", "127.0.0.3", ())


def test_insecure_opt_in_joins_remote_peers_loudly():
    """No keys + allow_insecure = true: remote binds and seeds are used, with a warning."""
    p = plan_from_conf(conf_with(("bind_host", "192.0.2.4", "gossip"),
                                 ("host_ip", "192.0.2.4", "peer"),
                                 ("seeds", ["192.0.2.1:9519"], "gossip"),
                                 ("allow_insecure", True, "gossip")))
    assert (p.peer_host, p.gossip_host) == ("192.0.2.4", "192.0.2.4")
    assert any("PLAINTEXT" in w for w in p.warnings)


def test_a_node_with_keys_joins_remote_seeds():
    """With cluster keys nothing is moved or refused."""
    p = plan(has_cluster_keys=True, peer_host="192.0.2.4", gossip_host="0.0.0.0",
             seeds=["192.0.2.1:9519"])
    assert (p.peer_host, p.gossip_host, p.warnings) == ("192.0.2.4", "0.0.0.0", ())


def test_serve_with_an_unsafe_config_exits_non_zero_with_the_reason(tmp_path, capsys):
    """`zund serve` on a keyless config with a remote seed prints why and exits 2."""
    cfg = tmp_path / "zund.conf"
    cfg.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[gossip]\nseeds = 192.0.2.1:9519\n")
    assert cmd_main.serve(["--config-file", str(cfg)]) == 2
    assert "refusing to start" in capsys.readouterr().err


def test_keygen_prints_a_key_the_gossip_keyring_accepts():
    """`zund keygen` prints base64 of 32 fresh bytes, the [gossip] keys format."""
    from zund.gossip.keyring import Keyring

    out = io.StringIO()
    assert cmd_main.keygen(out, random_bytes=lambda n: bytes(range(n))) == 0
    key = out.getvalue().strip()
    assert base64.b64decode(key) == bytes(range(32))
    assert Keyring.from_base64([key]) is not None


def test_keygen_keys_differ_between_runs():
    """Two runs with the OS randomness print two different keys."""
    a, b = io.StringIO(), io.StringIO()
    cmd_main.keygen(a), cmd_main.keygen(b)
    assert a.getvalue() != b.getvalue() and len(base64.b64decode(a.getvalue())) == 32


def test_version_names_the_installed_distribution(capsys):
    """`zund --version` prints `zund <version>` and exits 0."""
    assert cmd_main.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"zund {cmd_main.version()}"
