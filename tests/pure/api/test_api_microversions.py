"""Pure tests of zund.api.microversions (zun-api.md §2)."""

import pytest

from zund.api import microversions as mv
from zund.api.microversions import APIVersion
from zund.common import errors


@pytest.mark.parametrize("header, expected", [
    (None, "1.1"),
    ("", "1.1"),
    ("container 1.1", "1.1"),
    ("container 1.40", "1.40"),
    ("container 1.25", "1.25"),
    ("container latest", "1.40"),
    ("container LATEST", "1.40"),
    ("application-container 1.12", "1.12"),
    ("compute 2.1, container 1.5", "1.5"),
    ("Container 1.3", "1.3"),
])
def test_header_gives_effective_version(header, expected):
    """Absent header is 1.1; `latest` is the maximum; both service tokens work."""
    assert str(mv.from_header(header)) == expected


@pytest.mark.parametrize("header", ["container 1.41", "container 1.0", "container 2.1",
                                    "container 0.9"])
def test_out_of_range_versions_are_unsupported(header):
    """Versions outside [1.1, 1.40] raise MicroversionUnsupported (406)."""
    with pytest.raises(errors.MicroversionUnsupported):
        mv.from_header(header)


@pytest.mark.parametrize("header", ["container", "container 1", "container one.two",
                                    "compute 2.1", "container 1.2.3", "1.20"])
def test_malformed_header_or_wrong_service_is_invalid(header):
    """A malformed value or no entry for our service raises InvalidMicroversionHeader."""
    with pytest.raises(errors.InvalidMicroversionHeader):
        mv.from_header(header)


def test_versions_compare_numerically():
    """1.9 < 1.10 < 1.40 (not string order)."""
    assert APIVersion.parse("1.9") < APIVersion.parse("1.10") < APIVersion.parse("1.40")
    assert APIVersion(1, 20).matches(APIVersion(1, 19), None)
    assert not APIVersion(1, 14).matches(None, APIVersion(1, 13))


def test_response_headers_name_the_service():
    """Every /v1 response advertises min, max and the effective version."""
    h = mv.response_headers(APIVersion(1, 25))
    assert h == {"OpenStack-API-Minimum-Version": "container 1.1",
                 "OpenStack-API-Maximum-Version": "container 1.40",
                 "OpenStack-API-Version": "container 1.25",
                 "Vary": "OpenStack-API-Version"}
    assert "OpenStack-API-Version" not in mv.response_headers(None)
