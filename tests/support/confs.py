"""A node's ``ConfigOpts`` parsed from a config file's text, as ``zund serve`` would."""

from zund.conf import make_conf


def conf_from_text(tmp_path, text: str):
    """``text`` written to ``tmp_path/zund.conf`` and parsed (``--config-file``)."""
    path = tmp_path / "zund.conf"
    path.write_text(text)
    conf = make_conf()
    conf(["--config-file", str(path)])
    return conf
