"""Domain errors.

They carry no HTTP status codes: ``zund/api/errors.py`` maps them to HTTP by type.
The wire ``code`` of an error is its class name in kebab case, as Zun does
(``InvalidStateException`` -> ``container.invalid-state-exception``).
"""

from __future__ import annotations

import re


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class ZundError(Exception):
    """Base class. ``message`` is a format string filled from keyword arguments."""

    message = "An unknown error occurred."

    def __init__(self, message: str | None = None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.message.format(**kwargs)
            except (KeyError, IndexError):
                message = self.message
        self.msg = message
        super().__init__(message)

    @property
    def code(self) -> str:
        return kebab(type(self).__name__)


# -- lookups ---------------------------------------------------------------

class NotFound(ZundError):
    message = "Resource could not be found."


class ContainerNotFound(NotFound):
    message = "Container {ident} could not be found."


class ActionNotFound(NotFound):
    message = "Action {request_id} could not be found for container {ident}."


class HostNotFound(NotFound):
    message = "Host {ident} could not be found."


class ResourceNotFound(NotFound):
    message = "The resource could not be found."


class ImageRecordNotFound(NotFound):
    message = "Image {image} could not be found."


class RegistryNotFound(NotFound):
    message = "Registry {registry} could not be found."


# -- input -----------------------------------------------------------------

class InvalidInput(ZundError):
    """Bad client input. ``field`` names the offending field when there is one."""

    message = "Invalid input for field '{field}': {reason}"

    def __init__(self, message: str | None = None, field: str | None = None, **kwargs):
        self.field = field
        super().__init__(message, field=field, **kwargs)


class UnknownParameters(InvalidInput):
    message = "Unknown parameters: {names}"


class InvalidParamInVersion(InvalidInput):
    message = "Invalid param {param} because current request version is {req_version}. {param} is only supported from version {min_version}"


class UnsupportedMediaType(ZundError):
    message = "The server could not comply with the request since it is either malformed or otherwise incorrect. Content type {content_type} is not supported."


class MicroversionUnsupported(ZundError):
    message = "Version {version} was requested but the minor version is not supported by this service. The supported version range is: [{min_version}, {max_version}]."


class InvalidMicroversionHeader(ZundError):
    message = "Invalid API version header: {header}"


class VersionNotAllowed(ZundError):
    """The route exists, but not at the requested microversion."""

    message = "The requested version {version} does not support this request."


# -- policy / quota ----------------------------------------------------------

class PolicyNotAuthorized(ZundError):
    message = "Policy doesn't allow {action} to be performed."


class NotAuthenticated(ZundError):
    message = "Authentication required."


class QuotaExceeded(ZundError):
    # Zun's text exactly (zun/common/exception.py OverQuota): no trailing period
    message = "Quota exceeded for resources: {resources}"


# -- state -------------------------------------------------------------------

class Conflict(ZundError):
    message = "Conflict."


class InvalidStateException(Conflict):
    message = "Cannot {action} container {uuid} in {status} state."


class ContainerBusy(Conflict):
    message = "Cannot {action} container {uuid} while task {task_state} is in progress."


class ContainerAlreadyExists(Conflict):
    message = "A container with {field} {value} already exists."


class Conflicts(Conflict):
    message = "Multiple containers exist with same name {name}. Please use the container uuid instead."


class NotSupportedByRuntime(Conflict):
    message = "{action} is not supported by runtime {runtime}."


class RegistryAlreadyExists(Conflict):
    message = "A registry named {name} already exists in this project."


class ImageInUse(Conflict):
    message = "Image {image} is in use by container {container} on {host}."


class InteractiveNotSupported(InvalidInput):
    message = "{what} needs a websocket proxy, which zund does not provide yet."


class NotAcceptable(ZundError):
    message = "{reason}"


# -- runtime / placement -----------------------------------------------------

class RuntimeFailure(ZundError):
    """The runtime engine refused or failed an operation."""

    message = "Runtime error: {reason}"


class RuntimeObjectNotFound(RuntimeFailure):
    """The runtime has no object for this container (removed behind our back)."""

    message = "No such container: {name}"


class ImageNotFound(RuntimeFailure):
    message = "Image {image} could not be found."


class ImagePullFailed(RuntimeFailure):
    message = "Failed to pull image {image}: {reason}"


class RuntimeUnavailable(RuntimeFailure):
    message = "Runtime {runtime} is not available: {reason}"


class NoValidHost(ZundError):
    message = "There are not enough hosts available."


class ServiceUnavailable(ZundError):
    message = "Service unavailable: {reason}"


# -- added for the API layer ---------------------------------------------------

class RequestEntityTooLarge(ZundError):
    message = "Request body is larger than the limit of {limit} bytes."


class NotImplementedYet(ZundError):
    """A Zun feature zund does not provide (yet); answered with 501."""

    message = "{what} is not implemented by zund yet."


# -- added for placement (zund/cluster/bidding.py) -------------------------------

class ReservationExpired(Conflict):
    """A COMMIT named a reservation the bidder no longer holds (expired, released, unknown)."""

    message = "Reservation {reservation_id} has expired or is unknown on node {node}."


# -- added for versioned peer messages (zund/cluster/messages.py) ------------------

class UnsupportedPeerVersion(ServiceUnavailable):
    """A peer message of a protocol version this node does not speak (to the
    caller that node cannot serve the call: 503, a placement tries the next bid)."""

    message = ("Peer message version {version} is not supported by node {node} "
               "(it speaks version {supported}).")


class UnsupportedPeerOperation(ServiceUnavailable):
    """A peer message naming an operation this node does not know or allow."""

    message = "Peer operation {operation} is not supported by node {node}."
