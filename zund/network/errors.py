"""Network domain errors (translated to HTTP only in ``zund/api/``, by type).

They subclass the generic families of :mod:`zund.common.errors` so the API's one
status table maps them without knowing this module: not found -> 404, in use ->
409, a backend failure -> 503 with its reason visible (an operator can act on it).
"""

from __future__ import annotations

from zund.common import errors

#: a shared network asked for by a non-admin, another project's network touched...
PolicyForbidden = errors.PolicyNotAuthorized


class NetworkNotFound(errors.NotFound):
    """No network of that name/id visible to the caller (another project's private
    network is reported exactly like a missing one)."""

    message = "Network {network} could not be found."


class PortNotFound(errors.NotFound):
    message = "Port {port} could not be found."


class NetworkInUse(errors.Conflict):
    message = "Network {network} is in use by {count} port(s) and cannot be deleted."


class AddressInUse(errors.Conflict):
    message = "Address {address} is already in use on network {network}."


class NetworkAlreadyExists(errors.Conflict):
    message = "A network named {name} already exists in this project."


class NoDefaultNetwork(errors.Conflict):
    """Zun's rule: no own and no shared network to put a container on -> 409."""

    message = "No network is available for project {project_id}; create one or pass nets."


class NetworkError(errors.ServiceUnavailable):
    """The network backend failed (Neutron down, a port never became ACTIVE, the
    kernel refused a device...). ``reason`` says what to do."""

    message = "Network error: {reason}"
