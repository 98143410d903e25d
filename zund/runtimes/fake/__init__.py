"""An in-memory container engine that behaves like the Docker runtime.

One module per concept:

- ``engine``: :class:`FakeRuntime`, the IRuntime (images, containers' state
  machine, processes on the clock, signals, logs, exec, archives);
- ``container``: the container and process values;
- ``shell``: the tiny shell the containers run (tokenizer, parser, interpreter);
- ``filesystem``: the per-container file tree and its tar archives;
- ``images``: the image value and reference rules.

Callers import from the package: ``from zund.runtimes.fake import FakeRuntime``.
"""

from zund.runtimes.fake.container import FakeContainer, Process  # noqa: F401
from zund.runtimes.fake.engine import FakeRuntime  # noqa: F401
from zund.runtimes.fake.filesystem import FakeFile  # noqa: F401
from zund.runtimes.fake.images import TEST_IMAGE, FakeImage, normalize_image  # noqa: F401
from zund.runtimes.fake.shell import (  # noqa: F401
    BUILTINS,
    Shell,
    ShellExit,
    ShellSyntaxError,
    parse,
    tokenize,
)
