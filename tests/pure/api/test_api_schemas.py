"""Pure tests of create/update/list validation (zun-api.md §4, §6.1)."""

import pytest

from zund.api import schemas
from zund.api.microversions import v
from zund.common import errors

L = schemas.Limits()
LATEST = v("1.40")

OSC_RUN_BODY = {
    "name": "test", "image": "cirros", "memory": "256", "cpu": "0.5",
    "environment": {"A": "1"}, "labels": {"k": "v"}, "auto_remove": False,
    "command": ["sleep", "100"], "exposed_ports": {"80/tcp": {}},
    "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "3"},
    "hints": {}, "nets": [], "mounts": [],
}


def test_osc_run_body_is_accepted_and_normalised():
    """The exact body `openstack appcontainer run` sends (numbers as strings) validates."""
    out = schemas.validate_create(OSC_RUN_BODY, LATEST, L)
    assert out["cpu"] == 0.5 and out["memory"] == 256
    assert out["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert out["command"] == ["sleep", "100"]
    assert out["exposed_ports"] == {"80/tcp": {}}
    assert out["environment"] == {"A": "1"} and out["labels"] == {"k": "v"}
    assert out["auto_remove"] is False
    assert "nets" not in out and "mounts" not in out


def test_defaults_fill_cpu_and_memory():
    """A bare image gets default_cpu and default_memory."""
    out = schemas.validate_create({"image": "nginx"}, LATEST, L)
    assert out == {"image": "nginx", "cpu": 1.0, "memory": 512}


@pytest.mark.parametrize("body, field", [
    ({}, "image"),
    ({"image": "x"}, "image"),  # too short
    ({"image": 5}, "image"),
    ({"image": "cirros", "memory": "512M"}, "memory"),
    ({"image": "cirros", "memory": "2"}, "memory"),
    ({"image": "cirros", "memory": 9000}, "memory"),
    ({"image": "cirros", "memory": 1.5}, "memory"),
    ({"image": "cirros", "cpu": 17}, "cpu"),
    ({"image": "cirros", "cpu": "0.01"}, "cpu"),
    ({"image": "cirros", "cpu": "two"}, "cpu"),
    ({"image": "cirros", "cpu": True}, "cpu"),
    ({"image": "cirros", "disk": "10G"}, "disk"),
    ({"image": "cirros", "name": "-bad"}, "name"),
    ({"image": "cirros", "name": "a"}, "name"),
    ({"image": "cirros", "name": "has space"}, "name"),
    ({"image": "cirros", "unknown": 1}, "unknown"),
    ({"image": "cirros", "command": "sleep 10"}, "command"),  # string at 1.40
    ({"image": "cirros", "environment": {"A": 1}}, "environment.A"),
    ({"image": "cirros", "labels": ["x"]}, "labels"),
    ({"image": "cirros", "restart_policy": {"Name": "sometimes"}}, "restart_policy.Name"),
    ({"image": "cirros", "restart_policy": {"Name": "always", "MaximumRetryCount": "2"}},
     "restart_policy"),
    ({"image": "cirros", "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "x"}},
     "restart_policy"),
    ({"image": "cirros", "auto_remove": "maybe"}, "auto_remove"),
    ({"image": "cirros", "hostname": "a"}, "hostname"),
    ({"image": "cirros", "hostname": "x" * 64}, "hostname"),
    ({"image": "cirros", "exposed_ports": {"http": {}}}, "exposed_ports"),
    ({"image": "cirros", "exposed_ports": {"70000/tcp": {}}}, "exposed_ports"),
    ({"image": "cirros", "nets": [{"network": "n"}]}, "nets"),
    ({"image": "cirros", "mounts": [{"source": "v", "destination": "/d", "size": "0"}]},
     "mounts[0].size"),
    ({"image": "cirros", "mounts": [{"source": "v", "destination": "d"}]},
     "mounts[0].destination"),
    ({"image": "cirros", "security_groups": ["default"]}, "security_groups"),
    ({"image": "cirros", "image_pull_policy": "sometimes"}, "image_pull_policy"),
    ({"image": "cirros", "image_driver": "nfs"}, "image_driver"),
])
def test_bad_create_bodies_name_the_field(body, field):
    """Each invalid body is a 400 InvalidInput naming the offending field."""
    with pytest.raises(errors.InvalidInput) as ei:
        schemas.validate_create(body, LATEST, L)
    assert ei.value.field == field
    assert f"Invalid input for field '{field}'" in str(ei.value)


@pytest.mark.parametrize("field, value, min_version", [
    ("auto_remove", True, "1.3"), ("runtime", "runc", "1.5"), ("hostname", "hh", "1.9"),
    ("privileged", False, "1.21"), ("healthcheck", {}, "1.22"),
    ("exposed_ports", {"80": {}}, "1.24"), ("tty", True, "1.36"), ("host", "n1", "1.39"),
    ("entrypoint", ["sh"], "1.40"), ("nets", [], "1.2"), ("mounts", [], "1.11"),
])
def test_fields_newer_than_the_request_version_are_refused(field, value, min_version):
    """A field before its microversion: 400 naming the version it needs."""
    body = {"image": "cirros", field: value}
    with pytest.raises(errors.InvalidParamInVersion) as ei:
        schemas.validate_create(body, v("1.1"), L)
    assert f"only supported from version {min_version}" in str(ei.value)
    schemas.validate_create(body, v(min_version), L)  # fine at that version


def test_command_is_shell_string_before_1_20():
    """Before 1.20 `command` is one string, split shell-style; a list is refused."""
    out = schemas.validate_create({"image": "cirros", "command": "sh -c 'echo hi'"}, v("1.19"), L)
    assert out["command"] == ["sh", "-c", "echo hi"]
    with pytest.raises(errors.InvalidInput):
        schemas.validate_create({"image": "cirros", "command": ["sh"]}, v("1.19"), L)


def test_string_booleans_and_case_insensitive_pull_policy():
    out = schemas.validate_create(
        {"image": "cirros", "interactive": "True", "auto_heal": "no", "privileged": "0",
         "image_pull_policy": "IfNotPresent"}, LATEST, L)
    assert (out["interactive"], out["auto_heal"], out["privileged"]) == (True, False, False)
    assert out["image_pull_policy"] == "ifnotpresent"


def test_interactive_implies_tty_before_1_36():
    out = schemas.validate_create({"image": "cirros", "interactive": True}, v("1.35"), L)
    assert out["tty"] is True


def test_exposed_ports_default_to_tcp_and_healthcheck_uses_test_key():
    out = schemas.validate_create(
        {"image": "cirros", "exposed_ports": {"80": {}, "53/UDP": {}},
         "healthcheck": {"cmd": "true", "interval": "5", "retries": 3}}, LATEST, L)
    assert out["exposed_ports"] == {"80/tcp": {}, "53/udp": {}}
    assert out["healthcheck"] == {"test": "true", "interval": 5, "retries": 3}


@pytest.mark.parametrize("text, value", [
    ("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("off", False),
    (True, True), (False, False),
])
def test_parse_bool_accepts_string_forms(text, value):
    assert schemas.parse_bool(text, "f") is value


def test_parse_bool_rejects_other_strings():
    with pytest.raises(errors.InvalidInput):
        schemas.parse_bool("maybe", "all_projects")


def test_literal_none_means_not_given():
    assert schemas.not_none("None") is None
    assert schemas.optional_bool({"x": "None"}, "x", True) is True


@pytest.mark.parametrize("value, expected", [
    (None, None), ("all", None), ("None", None), ("10", 10), (5, 5)])
def test_tail(value, expected):
    assert schemas.parse_tail(value) == expected


def test_tail_rejects_garbage():
    with pytest.raises(errors.InvalidInput):
        schemas.parse_tail("lots")


def test_since_accepts_epoch_and_zun_datetime():
    assert schemas.parse_since("1520193000") == 1520193000.0
    assert schemas.parse_since("2018-03-04 19:48:49,500") == 1520192929.5
    assert schemas.parse_since("None") is None
    with pytest.raises(errors.InvalidInput):
        schemas.parse_since("yesterday")


def _list(params):
    return schemas.parse_list_query(
        params, max_limit=1000, sort_keys=schemas.CONTAINER_SORT_KEYS, default_sort_key="id",
        filters=schemas.CONTAINER_FILTERS, extra=("all_projects",))


def test_list_query_defaults_and_filters():
    q = _list({"status": "Running", "auto_remove": "true", "all_projects": "1"})
    assert (q.limit, q.sort_key, q.sort_dir, q.marker) == (1000, "id", "asc", None)
    assert q.filters == {"status": "Running", "auto_remove": True}
    assert q.all_projects is True


def test_list_limit_is_capped_at_max_limit():
    assert _list({"limit": "5000"}).limit == 1000


@pytest.mark.parametrize("params", [
    {"foo": "1"}, {"limit": "0"}, {"limit": "x"}, {"sort_dir": "up"}, {"sort_key": "bogus"},
    {"all_projects": "perhaps"},
])
def test_bad_list_params_are_400(params):
    with pytest.raises(errors.InvalidInput):
        _list(params)


def test_unknown_list_params_are_named():
    with pytest.raises(errors.UnknownParameters) as ei:
        _list({"foo": "1", "bar": "2"})
    assert str(ei.value) == "Unknown parameters: bar, foo"


def test_update_accepts_osc_set_body():
    assert schemas.validate_update({"memory": "1024", "cpu": "2"}, L) == {"memory": 1024,
                                                                           "cpu": 2.0}
    assert schemas.validate_update({"name": "new-name", "auto_heal": "true"}, L) == {
        "name": "new-name", "auto_heal": True}


@pytest.mark.parametrize("body, field", [
    ({"image": "x"}, "image"), ({"memory": "1G"}, "memory"), ({"name": "!"}, "name"), ({}, "body")])
def test_update_rejects_bad_bodies(body, field):
    with pytest.raises(errors.InvalidInput) as ei:
        schemas.validate_update(body, L)
    assert ei.value.field == field
