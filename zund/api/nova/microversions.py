"""Compute API microversions (pure).

Request: ``OpenStack-API-Version: compute 2.N`` or the older
``X-OpenStack-Nova-API-Version: 2.N``; absent means 2.1; ``latest`` the maximum.
The maximum is the one the installed openstacksdk's server resource asks for
(``_max_microversion = '2.100'``), so the SDK and OSC negotiate it; the fields of
the versions up to it that zund can fill are filled (see ``views``).
"""

from __future__ import annotations

from zund.api.microversions import APIVersion
from zund.common import errors

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE_TYPE = "compute"

MIN_VERSION = APIVersion(2, 1)
MAX_VERSION = APIVersion(2, 100)


def from_headers(modern: str | None, legacy: str | None) -> APIVersion:
    """The request's version; InvalidMicroversionHeader / MicroversionUnsupported
    (406) on a malformed or out-of-range one. A modern header naming only other
    services counts as absent (a client may send ``container 1.40`` everywhere)."""
    requested = None
    if modern is not None and modern.strip():
        for entry in modern.split(","):
            parts = entry.strip().split()
            if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
                requested = parts[1]
                break
    if requested is None and legacy is not None and legacy.strip():
        requested = legacy.strip()
    if requested is None:
        return MIN_VERSION
    if requested.lower() == "latest":
        return MAX_VERSION
    version = APIVersion.parse(requested)
    if not version.matches(MIN_VERSION, MAX_VERSION):
        raise errors.MicroversionUnsupported(
            f"Version {version} is not supported by the API. Minimum is {MIN_VERSION} "
            f"and maximum is {MAX_VERSION}.",
            version=str(version), min_version=str(MIN_VERSION), max_version=str(MAX_VERSION))
    return version


def response_headers(version: APIVersion | None) -> dict[str, str]:
    version = version or MIN_VERSION
    return {HEADER: f"{SERVICE_TYPE} {version}", LEGACY_HEADER: str(version),
            "Vary": f"{HEADER}, {LEGACY_HEADER}"}
