"""Container runtimes behind one narrow interface (see ``base.py``).

Runtimes are chosen by name through the ``zund.runtimes`` entry point group.
"""

from zund.runtimes.base import (  # noqa: F401
    CAPABILITIES,
    ContainerSpec,
    ExecResult,
    IRuntime,
    RuntimeState,
    RuntimeStatus,
    runtime_object_name,
)
