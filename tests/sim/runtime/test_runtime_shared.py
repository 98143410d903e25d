"""What every runtime shares: signal and pull-policy parsing (``base.py``) and the
Docker image source (``images.py``) over an in-memory stand-in for the engine's
image API. Pure: no engine, no reactor."""

from __future__ import annotations

import signal

import docker.errors
import pytest
import requests.exceptions
from twisted.internet import defer

from zund.common import errors
from zund.runtimes.base import ContainerSpec, RuntimeStatus, parse_signal, pull_policy
from zund.runtimes.fake import FakeRuntime
from zund.runtimes.images import DockerImageSource, ImageInfo


def run(coro):
    """Run a coroutine that never waits on the reactor; return its result or raise."""
    d = defer.ensureDeferred(coro)
    results: list = []
    d.addBoth(results.append)
    assert results, "coroutine waited on something"
    outcome = results[0]
    if hasattr(outcome, "raiseException"):
        outcome.raiseException()
    return outcome


@pytest.mark.parametrize("spelling, expected", [
    (None, signal.SIGKILL), ("", signal.SIGKILL), ("kill", signal.SIGKILL),
    ("SIGKILL", signal.SIGKILL), ("9", signal.SIGKILL), (9, signal.SIGKILL),
    ("term", signal.SIGTERM), ("SigTerm", signal.SIGTERM), (" usr1 ", signal.SIGUSR1),
    ("15", signal.SIGTERM),
])
def test_every_zun_spelling_of_a_signal_is_the_standard_signal(spelling, expected):
    """Names with or without SIG, any case, numbers as int or text; None is SIGKILL."""
    assert parse_signal(spelling) is expected


@pytest.mark.parametrize("spelling", ["TERM; reboot", "0", "99", "-9", "EXIT", "SIGNOPE"])
def test_anything_else_is_invalid_input_naming_the_signal_field(spelling):
    """A spelling that names no signal is InvalidInput on the field 'signal'."""
    with pytest.raises(errors.InvalidInput) as info:
        parse_signal(spelling)
    assert info.value.field == "signal"


def test_pull_policy_is_canonical_and_checked():
    """Policies are case-insensitive with ifnotpresent as the default; others are refused."""
    assert pull_policy(None) == "ifnotpresent"
    assert pull_policy("IfNotPresent") == "ifnotpresent"
    assert pull_policy("Always") == "always"
    with pytest.raises(errors.InvalidInput) as info:
        pull_policy("sometimes")
    assert info.value.field == "image_pull_policy"


def test_fake_runtime_refuses_an_unknown_signal_like_the_others():
    """kill with a spelling that names no signal is InvalidInput, before anything happens."""
    fake = FakeRuntime("n1")
    run(fake.create(ContainerSpec(uuid="a", image="zund-test/busybox:latest", node="n1",
                                  project_id="p", command=("sleep", "1"))))
    run(fake.start("a"))
    with pytest.raises(errors.InvalidInput):
        run(fake.kill("a", "NOPE"))
    assert run(fake.inspect("a")).status == RuntimeStatus.RUNNING
    run(fake.kill("a", "9"))
    assert run(fake.inspect("a")).exit_code == 137


# -- the image source ------------------------------------------------------------------

class ImageAPI:
    """The part of ``docker.APIClient`` the image source uses, in memory: local
    images by reference, and what a pull of a reference streams back (or raises)."""

    def __init__(self):
        self.local: dict[str, dict] = {}
        self.pull_streams: dict[str, list] = {}
        self.down: Exception | None = None

    def inspect_image(self, image):
        if self.down is not None:
            raise self.down
        if image not in self.local:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return self.local[image]

    def pull(self, repo, tag, stream, decode, auth_config=None):
        if self.down is not None:
            raise self.down
        ref = f"{repo}:{tag}"
        records = self.pull_streams.get(ref, [{"error": f"manifest for {ref} not found"}])
        if not any(r.get("error") for r in records):
            self.local[ref] = {"Id": "sha256:" + ref, "Config": {"Cmd": ["sh"]}}
        return iter(records)


def _source(api: ImageAPI) -> DockerImageSource:
    async def call_blocking(fn):
        return fn()
    return DockerImageSource(lambda: api, call_blocking, "test-runtime")


def test_image_source_pulls_only_when_the_policy_says_so():
    """ifnotpresent pulls a missing image once; never refuses a missing image; always pulls."""
    api = ImageAPI()
    api.pull_streams["busybox:latest"] = [{"status": "Pulling"}, {"status": "Done"}]
    source = _source(api)
    with pytest.raises(errors.ImageNotFound):
        run(source.ensure("busybox:latest", "never"))
    run(source.ensure("busybox:latest", "IfNotPresent"))
    assert run(source.inspect("busybox:latest")) == ImageInfo(
        id="sha256:busybox:latest", config={"Cmd": ["sh"]})
    run(source.ensure("busybox:latest", "never"))
    run(source.ensure("busybox", "always"))


def test_image_source_translates_engine_errors_by_type():
    """An error record in the pull stream is ImagePullFailed; a missing local image is
    ImageNotFound; an engine that does not answer is RuntimeUnavailable."""
    api = ImageAPI()
    source = _source(api)
    with pytest.raises(errors.ImagePullFailed) as info:
        run(source.ensure("missing:1", "ifnotpresent"))
    assert "manifest for missing:1 not found" in str(info.value)
    with pytest.raises(errors.ImageNotFound):
        run(source.inspect("missing:1"))
    api.down = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(errors.RuntimeUnavailable):
        run(source.inspect("busybox:latest"))
    with pytest.raises(errors.ImagePullFailed):
        run(source.pull("busybox:latest"))
