"""Nova's error body: ``{"itemNotFound": {"code": 404, "message": "..."}}``.

The status comes from the one table in ``zund.api.errors`` (by type); only the
body's shape differs from Zun's. A 500 hides internals behind a correlation id,
as the Zun API does.
"""

from __future__ import annotations

import uuid as _uuid

from twisted.logger import Logger
from twisted.python.failure import Failure

from zund.api import errors as api_errors
from zund.common import errors

log = Logger()

#: status -> Nova's fault name (anything else: computeFault)
FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}


def fault_body(status: int, message: str) -> dict:
    return {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}


def to_response(failure: Failure | BaseException, request_id: str = "") -> tuple[int, dict]:
    exc = failure.value if isinstance(failure, Failure) else failure
    status = api_errors.status_for(exc)
    if status >= 500 and status not in (501, 503):
        cid = request_id or ("req-" + str(_uuid.uuid4()))
        log.failure("nova_api.error", failure=failure if isinstance(failure, Failure)
                    else Failure(exc), correlation_id=cid, error=repr(exc))
        return status, fault_body(status, "Unexpected API Error. Please report this at "
                                          f"your operator. Correlation id: {cid}")
    message = exc.msg if isinstance(exc, errors.ZundError) else str(exc)
    return status, fault_body(status, message)
