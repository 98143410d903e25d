"""The ONE table mapping domain errors to HTTP, and Zun's ``errors`` body.

Domain errors (``zund.common.errors``) carry no status codes; this module decides
them by type (most specific class in the MRO wins). Every 4xx/5xx zund answers has
the body (zun-api.md §3)::

    {"errors": [{"request_id": ..., "code": "container.<kebab>", "status": N,
                 "title": msg, "detail": msg, "links": []}]}

A 500 never shows internals: the title is the reason phrase, the detail carries
a correlation id, and the traceback is logged under that id (event ``api.error``).
"""

from __future__ import annotations

import http
import uuid as _uuid

from twisted.logger import Logger
from twisted.python.failure import Failure

from zund.api import microversions
from zund.common import errors

log = Logger()

#: domain error type -> HTTP status. Looked up along the exception's MRO.
STATUS_BY_ERROR: dict[type, int] = {
    errors.NotAuthenticated: 401,
    errors.NotFound: 404,
    errors.InvalidInput: 400,
    errors.PolicyNotAuthorized: 403,
    errors.QuotaExceeded: 403,
    errors.Conflict: 409,
    errors.UnsupportedMediaType: 415,
    errors.RequestEntityTooLarge: 413,
    errors.MicroversionUnsupported: 406,
    errors.InvalidMicroversionHeader: 406,
    errors.VersionNotAllowed: 406,
    errors.NotAcceptable: 406,
    # zund places synchronously: no node could take the container. Zun would
    # answer 202 and put the container in Error; a 409 keeps the message visible.
    errors.NoValidHost: 409,
    errors.NotImplementedYet: 501,
    errors.ServiceUnavailable: 503,
    errors.RuntimeFailure: 500,
}

#: Zun's own code for an out-of-range microversion (not container.<kebab>).
_SPECIAL_CODES = {errors.MicroversionUnsupported: "zun.microversion-unsupported"}

_OBFUSCATED = ("The server has either erred or is incapable of performing the requested "
               "operation. Correlation id: {cid}")


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception: by type, 500 for anything unknown."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, title: str, detail: str | None = None, *,
               code: str = "container.", request_id: str = "", **extra) -> dict:
    """One Zun ``errors`` body. ``extra`` keys are added to the error object
    (406 adds min_version/max_version)."""
    err = {"request_id": request_id, "code": code, "status": status, "title": title,
           "detail": title if detail is None else detail, "links": []}
    err.update(extra)
    return {"errors": [err]}


def to_response(failure_or_exc: Failure | BaseException, request_id: str = "") -> tuple[int, dict]:
    """(status, body) for an error raised while handling a request. Logs 500s."""
    if isinstance(failure_or_exc, Failure):
        failure, exc = failure_or_exc, failure_or_exc.value
    else:
        failure, exc = None, failure_or_exc
    status = status_for(exc)
    if isinstance(exc, errors.ZundError):
        code = next((c for t, c in _SPECIAL_CODES.items() if isinstance(exc, t)),
                    "container." + exc.code)
        message = exc.msg
    else:
        code, message = "container.", str(exc)
    extra = {}
    if status == 406:
        extra = {"min_version": str(microversions.MIN_VERSION),
                 "max_version": str(microversions.MAX_VERSION)}
    if status == 500:
        cid = request_id or ("req-" + str(_uuid.uuid4()))
        log.failure("api.error", failure=failure if failure is not None else Failure(exc),
                    correlation_id=cid, error=repr(exc))
        return status, error_body(status, reason_phrase(status), _OBFUSCATED.format(cid=cid),
                                  code=code, request_id=request_id)
    return status, error_body(status, message, code=code, request_id=request_id, **extra)
