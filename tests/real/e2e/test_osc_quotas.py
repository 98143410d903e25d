"""The unmodified OpenStack client's quota commands (python-zunclient, Zun
microversion 1.26) against a real ``zund serve`` (noauth, fake runtime):
``appcontainer quota get / update / delete / default`` and
``appcontainer quota class get / update``, as an admin runs them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.nodeproc import ZundProcess

ZUN_DEFAULTS = {"containers": 40, "cpu": 20, "memory": 51200, "disk": 100}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("oscq"))
    n = ZundProcess(wd, name=f"oscq-{os.getpid()}", runtimes="fake").start()
    yield n
    assert n.terminate() == 0, n.log_tail()


def osc(node, *args) -> dict | str:
    """``openstack appcontainer <args>`` with noauth against ``node``; the JSON it
    prints (``-f json``) for show-like commands, else its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)
    argv = ["openstack", "appcontainer", *args]
    shows = args[:2] != ("quota", "delete")
    if shows:
        argv += ["-f", "json"]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, f"{argv}: {p.returncode}\n{p.stdout}\n{p.stderr}\n{node.log_tail()}"
    return json.loads(p.stdout) if shows else p.stdout


def limits(shown: dict) -> dict:
    return {k: shown[k] for k in ZUN_DEFAULTS}


def test_quota_get_update_delete_with_the_openstack_client(node):
    """get shows Zun's defaults; update changes the given limits (and -1); get
    --usages shows limit/in_use; delete brings the defaults back."""
    assert limits(osc(node, "quota", "get", "projq")) == ZUN_DEFAULTS
    updated = osc(node, "quota", "update", "--containers", "5", "--cpu", "-1", "projq")
    assert limits(updated) == dict(ZUN_DEFAULTS, containers=5, cpu=-1)
    assert limits(osc(node, "quota", "get", "projq")) == dict(ZUN_DEFAULTS, containers=5,
                                                              cpu=-1)
    used = osc(node, "quota", "get", "--usages", "projq")
    assert used["containers"] == {"limit": 5, "in_use": 0}
    assert used["cpu"] == {"limit": -1, "in_use": 0}
    out = osc(node, "quota", "delete", "projq")
    assert "failed" not in out, out  # the client prints failures and still exits 0
    assert limits(osc(node, "quota", "get", "projq")) == ZUN_DEFAULTS


def test_quota_class_and_defaults_with_the_openstack_client(node):
    """quota class update on "default" changes what quota class get, quota default
    and a project without its own values show."""
    assert limits(osc(node, "quota", "class", "get", "default")) == ZUN_DEFAULTS
    updated = osc(node, "quota", "class", "update", "--containers", "7", "--memory", "4096",
                  "default")
    expected = dict(ZUN_DEFAULTS, containers=7, memory=4096)
    assert limits(updated) == expected
    assert limits(osc(node, "quota", "class", "get", "default")) == expected
    assert limits(osc(node, "quota", "default", "projd")) == expected
    assert limits(osc(node, "quota", "get", "projd")) == expected
