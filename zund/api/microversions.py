"""Zun API microversions (zun-api.md §2).

Request header ``OpenStack-API-Version: container 1.N`` (also the service token
``application-container`` that openstacksdk sends, and ``latest``). Absent means
the minimum, 1.1. Pure: no I/O.
"""

from __future__ import annotations

import re

import attrs

from zund.common import errors

HEADER = "OpenStack-API-Version"
MIN_HEADER = "OpenStack-API-Minimum-Version"
MAX_HEADER = "OpenStack-API-Maximum-Version"
SERVICE_TYPES = ("container", "application-container")
#: the service token zund writes in response headers
SERVICE_TYPE = "container"

_VERSION_RE = re.compile(r"^([0-9]{1,9})\.([0-9]{1,9})$")  # bounded: int() of 5000 digits raises


@attrs.frozen(order=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> "APIVersion":
        """``"1.40"`` -> APIVersion(1, 40). ``latest`` is resolved by the caller.
        Raises InvalidMicroversionHeader on anything else."""
        m = _VERSION_RE.match(text.strip())
        if m is None:
            raise errors.InvalidMicroversionHeader(header=text)
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, min_version: "APIVersion | None" = None,
                max_version: "APIVersion | None" = None) -> bool:
        """True when min_version <= self <= max_version (None = unbounded)."""
        if min_version is not None and self < min_version:
            return False
        if max_version is not None and self > max_version:
            return False
        return True


def v(text: str) -> APIVersion:
    """Shorthand for literals: ``v("1.20")``."""
    return APIVersion.parse(text)


MIN_VERSION = APIVersion(1, 1)
MAX_VERSION = APIVersion(1, 40)


#: header text -> its (immutable) version; clients send few spellings, so a small
#: bounded memo spares the parse per request. Refused headers are never kept.
_PARSED: dict[str, APIVersion] = {}
_PARSED_MAX = 256


def from_header(value: str | None) -> APIVersion:
    """The effective version for a request carrying ``value`` as its
    OpenStack-API-Version header (None when absent).

    A header may list several services (``compute 2.1, container 1.5``); only an
    entry for one of SERVICE_TYPES counts. A header without such an entry, or with
    a malformed one, raises InvalidMicroversionHeader; a version outside
    [MIN_VERSION, MAX_VERSION] raises MicroversionUnsupported (both are 406).
    """
    if value is None:
        return MIN_VERSION
    version = _PARSED.get(value)
    if version is None:
        version = _parse_header(value)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[value] = version
    return version


def _parse_header(value: str) -> APIVersion:
    if not value.strip():
        return MIN_VERSION
    requested = None
    for entry in value.split(","):
        parts = entry.strip().split()
        if len(parts) != 2:
            continue
        service, version = parts
        if service.lower() in SERVICE_TYPES:
            requested = version
            break
    if requested is None:
        raise errors.InvalidMicroversionHeader(header=value)
    if requested.lower() == "latest":
        return MAX_VERSION
    version = APIVersion.parse(requested)
    if not version.matches(MIN_VERSION, MAX_VERSION):
        raise errors.MicroversionUnsupported(
            version=str(version), min_version=str(MIN_VERSION), max_version=str(MAX_VERSION))
    return version


_ENCODED: dict[APIVersion | None, tuple] = {}


def encoded_response_headers(version: APIVersion | None) -> tuple:
    """:func:`response_headers` as ``(name, value)`` bytes pairs, built once per
    version (the pipeline sets them on every /v1 answer)."""
    pairs = _ENCODED.get(version)
    if pairs is None:
        pairs = _ENCODED[version] = tuple(
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response_headers(version).items())
    return pairs


def response_headers(version: APIVersion | None) -> dict[str, str]:
    """Headers every /v1 response carries. ``version`` None: the request's version
    could not be determined (a 406), so the effective-version header is left out."""
    headers = {
        MIN_HEADER: f"{SERVICE_TYPE} {MIN_VERSION}",
        MAX_HEADER: f"{SERVICE_TYPE} {MAX_VERSION}",
        "Vary": HEADER,
    }
    if version is not None:
        headers[HEADER] = f"{SERVICE_TYPE} {version}"
    return headers
