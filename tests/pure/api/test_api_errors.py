"""Pure tests of the error table and body (zun-api.md §3)."""

import pytest

from zund.api import errors as api_errors
from zund.common import errors


@pytest.mark.parametrize("exc, status", [
    (errors.ContainerNotFound(ident="x"), 404),
    (errors.HostNotFound(ident="x"), 404),
    (errors.InvalidInput(field="memory", reason="bad"), 400),
    (errors.UnknownParameters(names="foo"), 400),
    (errors.PolicyNotAuthorized(action="container:create"), 403),
    (errors.QuotaExceeded(resources="cpu"), 403),
    (errors.InvalidStateException(action="start", uuid="u", status="Running"), 409),
    (errors.Conflicts(name="n"), 409),
    (errors.ContainerAlreadyExists(field="name", value="n"), 409),
    (errors.UnsupportedMediaType(content_type="text/plain"), 415),
    (errors.MicroversionUnsupported(version="1.41", min_version="1.1", max_version="1.40"), 406),
    (errors.InvalidMicroversionHeader(header="x"), 406),
    (errors.VersionNotAllowed(version="1.1"), 406),
    (errors.RequestEntityTooLarge(limit=10), 413),
    (errors.NotAuthenticated(), 401),
    (errors.ServiceUnavailable(reason="x"), 503),
    (errors.NotImplementedYet(what="x"), 501),
    (errors.RuntimeFailure(reason="x"), 500),
    (errors.ImagePullFailed(image="x", reason="y"), 500),
    (ValueError("boom"), 500),
])
def test_status_by_error_type(exc, status):
    """The one table maps domain errors (and their subclasses) to HTTP."""
    assert api_errors.status_for(exc) == status


def test_client_error_body_has_zun_shape():
    """4xx: kebab-case code from the class name, title == detail == message."""
    exc = errors.InvalidStateException(action="start", uuid="u1", status="Running")
    status, body = api_errors.to_response(exc, "req-1")
    assert status == 409
    assert body == {"errors": [{
        "request_id": "req-1", "code": "container.invalid-state-exception", "status": 409,
        "title": "Cannot start container u1 in Running state.",
        "detail": "Cannot start container u1 in Running state.", "links": []}]}


def test_microversion_error_has_range_and_zun_code():
    """406 out of range: code zun.microversion-unsupported plus min/max_version."""
    exc = errors.MicroversionUnsupported(version="1.41", min_version="1.1", max_version="1.40")
    status, body = api_errors.to_response(exc, "req-2")
    err = body["errors"][0]
    assert status == 406
    assert err["code"] == "zun.microversion-unsupported"
    assert (err["min_version"], err["max_version"]) == ("1.1", "1.40")


@pytest.mark.allow_logged_errors
def test_server_error_hides_details_behind_correlation_id():
    """500: reason phrase as title, correlation id in detail, never the exception text."""
    status, body = api_errors.to_response(RuntimeError("secret internals"), "req-3")
    err = body["errors"][0]
    assert status == 500
    assert err["title"] == "Internal Server Error"
    assert "req-3" in err["detail"] and "secret" not in err["detail"]
    assert err["code"] == "container."
