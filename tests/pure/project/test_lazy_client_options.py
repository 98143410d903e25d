"""keystoneauth's [glance]/[neutron] options are registered when the group is
configured or first used, and oslo.policy's http check when a rule names it: a
node that uses neither never imports keystoneauth, requests or urllib3 (issue 13
§5, memory). The sample config still lists them (test_config_sample)."""

import json
import os
import subprocess
import sys

from tests.support.confs import conf_from_text
from zund.conf import _service_client, make_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_PROBE = """
import json, sys
from zund.conf import _service_client, make_conf
from zund.api.policy import make_enforcer
conf = make_conf()
conf([])
configured = [_service_client.configured(conf, g) for g in ("glance", "neutron")]
make_enforcer(conf)
loaded = sorted({m.partition(".")[0] for m in sys.modules} & {"keystoneauth1", "requests", "urllib3"})
print(json.dumps({"configured": configured, "loaded": loaded}))
"""


def test_unconfigured_node_imports_no_keystoneauth_requests_or_urllib3():
    """Fresh interpreter: no [glance]/[neutron] values, policy loaded -> none imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_GLANCE__", "OS_NEUTRON__"))}
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=60, check=True)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {
        "configured": [False, False], "loaded": []}


def test_glance_endpoint_in_config_file_is_configured_with_keystoneauth_options(tmp_path):
    """[glance] endpoint_override set -> configured; keystoneauth's options read it."""
    conf = conf_from_text(tmp_path, "[glance]\nendpoint_override = http://127.0.0.1:1/image\n")
    assert _service_client.configured(conf, "glance") is True
    assert conf.glance.endpoint_override == "http://127.0.0.1:1/image"
    assert conf.glance.service_type == "image" and conf.glance.auth_type is None


def test_glance_section_without_endpoint_or_auth_is_not_configured(tmp_path):
    """[glance] naming only its own options -> not configured, options still usable."""
    conf = conf_from_text(tmp_path, "[glance]\ndefault_image_driver = glance\n")
    assert _service_client.configured(conf, "glance") is False
    assert conf.glance.default_image_driver == "glance"
    assert conf.glance.service_type == "image"


def test_glance_endpoint_from_environment_is_configured(tmp_path, monkeypatch):
    """OS_GLANCE__ENDPOINT_OVERRIDE (oslo.config's environment source) -> configured."""
    monkeypatch.setenv("OS_GLANCE__ENDPOINT_OVERRIDE", "http://127.0.0.1:2/image")
    conf = conf_from_text(tmp_path, "[DEFAULT]\n")
    assert _service_client.configured(conf, "glance") is True
    assert conf.glance.endpoint_override == "http://127.0.0.1:2/image"


def test_neutron_adapter_of_an_unconfigured_conf_has_service_type_network():
    """load_adapter registers the options it reads: service type network, noauth."""
    conf = make_conf()
    conf([])
    adapter = _service_client.load_adapter(conf, "neutron")
    assert adapter.service_type == "network" and adapter.session.auth is None


def test_policy_rule_naming_http_still_gets_oslo_policys_http_check():
    """The deferred rule-check plugins still build oslo.policy's HttpCheck."""
    from oslo_policy import policy

    import zund.api.policy  # noqa: F401 - installs the deferred plugins

    rules = policy.Rules.from_dict({"remote": "http://127.0.0.1:1/check", "r": "role:admin"})
    assert type(rules["remote"]).__name__ == "HttpCheck"
    assert type(rules["r"]).__name__ == "RoleCheck"
