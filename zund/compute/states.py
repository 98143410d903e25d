"""Pure status rules: which action is allowed in which status, and how runtime
states map to Zun statuses. No I/O.

Zun keeps the observed ``status`` apart from the in-flight ``task_state``; only
one task runs at a time, and periodic sync never overwrites a status while a task
is in flight.
"""

from __future__ import annotations

from zund.runtimes.base import RuntimeStatus

CREATING = "Creating"
CREATED = "Created"
RUNNING = "Running"
STOPPED = "Stopped"
PAUSED = "Paused"
RESTARTING = "Restarting"
REBUILDING = "Rebuilding"
DELETING = "Deleting"
DELETED = "Deleted"
ERROR = "Error"
UNKNOWN = "Unknown"
DEAD = "Dead"

ALL_STATUSES = (CREATING, CREATED, RUNNING, STOPPED, PAUSED, RESTARTING, REBUILDING,
                DELETING, DELETED, ERROR, UNKNOWN, DEAD)

TASK_STATES = (
    "image_pulling", "container_creating", "container_starting", "container_stopping",
    "container_rebooting", "container_pausing", "container_unpausing", "container_killing",
    "container_deleting", "container_rebuilding", "sg_adding", "sg_removing",
    "network_attaching", "network_detaching",
)

#: action -> statuses in which it is accepted (zun-api.md §5.2; Zun's VALID_STATES).
VALID_STATES: dict[str, tuple[str, ...]] = {
    "start": (CREATED, STOPPED, ERROR),
    "stop": (RUNNING,),
    "reboot": (CREATED, RUNNING, STOPPED, ERROR),
    "pause": (RUNNING,),
    "unpause": (PAUSED,),
    "kill": (RUNNING,),
    "logs": (CREATED, ERROR, PAUSED, RUNNING, STOPPED, UNKNOWN),
    "execute": (RUNNING,),
    "execute_resize": (RUNNING,),
    "resize": (RUNNING,),
    "top": (RUNNING,),
    "stats": (RUNNING,),
    "get_archive": (CREATED, PAUSED, RUNNING, STOPPED),
    "put_archive": (CREATED, PAUSED, RUNNING, STOPPED),
    "commit": (RUNNING, STOPPED, PAUSED),
    "update": (CREATED, RUNNING, STOPPED, PAUSED),
    "resize_container": (CREATED, RUNNING, STOPPED, PAUSED),
    "rebuild": (CREATED, RUNNING, STOPPED, ERROR),
    "attach": (RUNNING,),
    "delete": (CREATED, ERROR, STOPPED, DELETED, DEAD),
    "delete_after_stop": (RUNNING,),
    "delete_force": (CREATED, CREATING, ERROR, STOPPED, DELETED, DEAD, RUNNING, PAUSED,
                     RESTARTING, REBUILDING, UNKNOWN, DELETING),
}

#: action -> task_state set while it runs.
TASK_OF_ACTION = {
    "start": "container_starting",
    "stop": "container_stopping",
    "reboot": "container_rebooting",
    "pause": "container_pausing",
    "unpause": "container_unpausing",
    "kill": "container_killing",
    "delete": "container_deleting",
    "rebuild": "container_rebuilding",
}

#: action -> name recorded in container_actions (Zun's names).
RECORDED_ACTION = {
    "create": "create", "delete": "delete", "reboot": "reboot", "rebuild": "rebuild",
    "stop": "stop", "start": "start", "pause": "pause", "unpause": "unpause",
    "execute": "exec_cmd", "kill": "kill", "update": "update", "resize_container": "resize",
    "put_archive": "put_archive", "commit": "commit",
}


def is_allowed(action: str, status: str) -> bool:
    return status in VALID_STATES[action]


_RUNTIME_TO_STATUS = {
    RuntimeStatus.RUNNING: RUNNING,
    RuntimeStatus.PAUSED: PAUSED,
    RuntimeStatus.RESTARTING: RESTARTING,
    RuntimeStatus.EXITED: STOPPED,
    RuntimeStatus.REMOVING: STOPPED,
    RuntimeStatus.DEAD: DEAD,
}


def status_from_runtime(current: str, runtime: RuntimeStatus) -> str:
    """Zun status for a runtime state (zun-api.md §6.3). ``created`` keeps the
    current status unless we were Creating; an unexpected state is Unknown."""
    if runtime == RuntimeStatus.CREATED:
        # a created-but-never-started object: Created after a create, otherwise the
        # status we recorded (e.g. Error after a failed start) stays.
        return CREATED if current in (CREATING, CREATED, RESTARTING) else current
    return _RUNTIME_TO_STATUS.get(runtime, UNKNOWN)


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s} seconds" if s != 1 else "1 second"
    m = s // 60
    if m < 60:
        return f"{m} minutes" if m != 1 else "About a minute"
    h = m // 60
    if h < 48:
        return f"{h} hours" if h != 1 else "About an hour"
    return f"{h // 24} days"


def status_detail(status: str, exit_code, started_at, finished_at, now) -> str | None:
    """docker-ps style detail: ``Up 5 minutes``, ``Up 2 hours (paused)``,
    ``Exited(0) 8 minutes ago``, ``Created``, ``Restarting``, ``Dead``."""
    if status == RUNNING and started_at is not None:
        return "Up " + _ago((now - started_at).total_seconds())
    if status == PAUSED and started_at is not None:
        return "Up " + _ago((now - started_at).total_seconds()) + " (paused)"
    if status == STOPPED:
        code = 0 if exit_code is None else exit_code
        if finished_at is None:
            return f"Exited({code})"
        return f"Exited({code}) {_ago((now - finished_at).total_seconds())} ago"
    if status == CREATED:
        return "Created"
    if status == RESTARTING:
        return "Restarting"
    if status == DEAD:
        return "Dead"
    return None
