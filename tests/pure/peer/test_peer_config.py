"""``[peer]`` options reach the peer parts as plain values."""

import pytest
from oslo_config import cfg

from tests.support.confs import conf_from_text
from zund.conf.peer import peer_config


def test_notes_delay_defaults_to_fifty_milliseconds(tmp_path):
    """Without the option a peer note waits 50 ms for a request to ride on."""
    assert peer_config(conf_from_text(tmp_path, "")).notes_delay_s == 0.05


def test_notes_delay_is_read_from_the_peer_group(tmp_path):
    """An operator's ``[peer] notes_delay_s`` is the value the peer client gets."""
    assert peer_config(conf_from_text(tmp_path, "[peer]\nnotes_delay_s = 0.2\n")).notes_delay_s == 0.2


def test_a_negative_notes_delay_is_refused(tmp_path):
    """A delay below zero is a configuration error naming the option."""
    conf = conf_from_text(tmp_path, "[peer]\nnotes_delay_s = -1\n")
    with pytest.raises(cfg.ConfigFileValueError, match="notes_delay_s"):
        peer_config(conf)
