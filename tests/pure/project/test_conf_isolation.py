"""Every ConfigOpts is on its own: what one node's config registers at run time never
shows up in another's (several nodes share one process in the simulated tier)."""

from zund.conf import make_conf
from zund.images.glance import make_adapter


def test_auth_plugin_options_of_one_conf_do_not_leak_into_a_new_one(tmp_path):
    """keystoneauth registers the password plugin's options (a required auth_url) on
    the conf whose [glance] names it; a conf made afterwards parses without them."""
    path = tmp_path / "zund.conf"
    path.write_text("[glance]\nauth_type = password\nauth_url = http://127.0.0.1:1/v3\n"
                    "username = u\npassword = p\nproject_name = service\n")
    first = make_conf()
    first(["--config-file", str(path)])
    make_adapter(first)
    assert first.glance.auth_url == "http://127.0.0.1:1/v3"

    second = make_conf()
    second([])  # would raise RequiredOptError for [glance] auth_url if it leaked
    make_adapter(second)  # registers keystoneauth's options on it too (noauth)
    assert "auth_url" not in second.glance
    assert second.glance.service_type == "image"
