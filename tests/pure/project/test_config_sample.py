"""The committed etc/zund/zund.conf.sample matches what oslo-config-generator
produces from zund/conf today."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_committed_sample_is_not_stale(tmp_path):
    """Regenerate the sample and compare byte for byte; run tools/gen-config.sh to fix."""
    out = tmp_path / "zund.conf.sample"
    subprocess.run(
        [sys.executable, "-m", "oslo_config.generator",
         "--config-file", os.path.join(ROOT, "etc/zund/zund-config-generator.conf"),
         "--output-file", str(out)],
        check=True, cwd=ROOT, env=dict(os.environ, ZUND_CONFIG_SAMPLE="1"))
    committed = open(os.path.join(ROOT, "etc/zund/zund.conf.sample")).read()
    assert out.read_text() == committed, "etc/zund/zund.conf.sample is stale: run tools/gen-config.sh"


def test_operator_option_names_exist():
    """Options other tools rely on keep exactly these names and defaults."""
    from zund.conf import make_conf

    conf = make_conf()
    conf([])
    assert conf.api.port == 9517
    assert conf.state_path == "/var/lib/zund"
    assert conf.auth_strategy == "noauth"
    assert conf.api.host_ip
    assert conf.host
