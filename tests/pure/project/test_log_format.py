"""zund's log lines (``zund.cmd.main``): the event text is what Twisted's own
``formatEvent`` gives, fields the format did not name follow as key=value, and
the time is Twisted's ``formatTime`` of the event."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEvent, formatTime

from zund.cmd import main


class Thing:
    name = "box"

    def __str__(self):
        return "thing"

    def label(self):
        return "called"


EVENTS = [
    {"log_format": "compute.create uuid={uuid}", "uuid": "u-1", "node": "n1"},
    {"log_format": "{a!r} {b:>5} {c[0]} {t.name}", "a": "x y", "b": 7, "c": [1, 2],
     "t": Thing()},
    {"log_format": "{t.label()} called", "t": Thing()},           # Twisted's call syntax
    {"log_format": "missing {nothere}", "other": 1},              # unformattable
    {"log_format": "bad {", "x": 1},                              # not a format
    {"log_format": "{{literal}} {x}", "x": 1},
    {"log_format": None, "x": 1},
    {"x": 1},
    {"log_format": "{log_io}", "log_io": "127.0.0.1 - - \"POST /v1/containers\" 202"},
]


@pytest.mark.parametrize("event", EVENTS)
def test_event_text_is_what_twisted_formats(event):
    """Every kind of format (plain, conversions and specs, attribute and index
    access, call syntax, a missing key, a broken format, none) gives Twisted's
    text."""
    event = dict(event, log_namespace="zund.test", log_level=LogLevel.info)
    assert main._event_text(event, event.get("log_format")) == formatEvent(event)


@given(st.text(max_size=40), st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
    st.one_of(st.integers(), st.text(max_size=10), st.floats(allow_nan=False)), max_size=4))
def test_any_format_gives_twisteds_text(fmt, fields):
    """Whatever the format string and fields, the text matches Twisted's."""
    event = dict(fields, log_format=fmt)
    assert main._event_text(event, fmt) == formatEvent(event)


def test_line_names_unmentioned_fields_and_the_time():
    """The line carries time, namespace and level, the text, then the fields the
    format did not name (a value with spaces quoted)."""
    now = time.time()
    event = {"log_format": "compute.create uuid={uuid}", "uuid": "u-1", "node": "n 1",
             "project": "p1", "log_namespace": "zund.compute", "log_level": LogLevel.info,
             "log_time": now}
    line = main.format_line(event)
    assert line == (f"{formatTime(now)} [zund.compute#info] compute.create uuid=u-1 "
                    f"node='n 1' project=p1\n")


def test_time_follows_the_clock_across_seconds():
    """The time text is cached per second, never reused for another second."""
    base = int(time.time())
    for when in (base + 0.1, base + 0.9, base + 1.0, base + 1.5, base + 0.5, base + 61.2):
        event = {"log_format": "x", "log_namespace": "n", "log_level": LogLevel.info,
                 "log_time": when}
        assert main.format_line(event).startswith(formatTime(when) + " ")
