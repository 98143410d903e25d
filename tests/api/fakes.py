"""FakeManager: the documented ContainerManager interface, in memory.

Enough behaviour for API tests: project scoping of lookups, name/uuid lookup,
state rules from ``zund.compute.states`` (raising the same domain errors as the
real manager), and synchronous status changes. The real manager over the fake
runtime is covered by integration tests elsewhere.
"""

from __future__ import annotations

import datetime
import itertools
import re
import uuid as _uuid

from zund.common import errors
from zund.compute import states
from zund.runtimes.base import ExecResult
from zund.records import ActionEvent, ActionRecord, ContainerRecord

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
T0 = datetime.datetime(2018, 3, 4, 19, 48, 49, 123456)

HOST_INFO = {
    "uuid": "d0405f06-0000-4000-8000-000000000001", "hostname": "node1", "mem_total": 128446,
    "mem_used": 512, "cpus": 48, "cpu_used": 0.2, "disk_total": 16, "disk_used": 10,
    "disk_quota_supported": False, "total_containers": 2, "architecture": "x86_64",
    "os_type": "linux", "os": "Debian GNU/Linux 12", "kernel_version": "6.1.0",
    "labels": {"type": "test"}, "runtimes": ["runc"], "enable_cpu_pinning": False,
    "rp_uuid": "never-shown",
}


class FakeManager:
    def __init__(self, node: str = "node1"):
        self.node = node
        self.records: dict[str, ContainerRecord] = {}
        self.actions: dict[str, list[ActionRecord]] = {}
        self.calls: list[tuple] = []
        self._ids = itertools.count(1)
        self.logs_text = "hello\n"

    # -- helpers for tests ----------------------------------------------------------
    def add(self, **fields) -> ContainerRecord:
        fields.setdefault("uuid", str(_uuid.uuid4()))
        fields.setdefault("project_id", "demo")
        fields.setdefault("user_id", "admin")
        fields.setdefault("image", "cirros")
        fields.setdefault("host", self.node)
        fields.setdefault("created_at", T0)
        rec = ContainerRecord(**fields)
        rec.id = next(self._ids)
        self.records[rec.uuid] = rec
        return rec

    def _check(self, action: str, rec: ContainerRecord) -> None:
        if not states.is_allowed(action, rec.status):
            raise errors.InvalidStateException(action=action, uuid=rec.uuid, status=rec.status)

    def _record(self, ctx, rec, action):
        self.actions.setdefault(rec.uuid, []).append(ActionRecord(
            container_uuid=rec.uuid, action=action, request_id=ctx.request_id,
            user_id=ctx.user_id, project_id=ctx.project_id, start_time=T0,
            finish_time=T0, events=[ActionEvent(event=f"compute__do_container_{action}",
                                                start_time=T0, finish_time=T0,
                                                result="Success", traceback="tb")]))

    # -- lookups ------------------------------------------------------------------------
    async def lookup(self, ctx, ident: str, all_projects: bool = False):
        visible = [r for r in self.records.values()
                   if ctx.is_admin or r.project_id == ctx.project_id]
        if _UUID_RE.match(ident):
            for r in visible:
                if r.uuid == ident:
                    return r
            raise errors.ContainerNotFound(ident=ident)
        named = [r for r in visible if r.name == ident]
        if not ctx.is_admin:
            named = [r for r in named if r.project_id == ctx.project_id]
        if not named:
            raise errors.ContainerNotFound(ident=ident)
        if len(named) > 1:
            raise errors.Conflicts(name=ident)
        return named[0]

    async def list(self, ctx, all_projects: bool = False):
        recs = sorted(self.records.values(), key=lambda r: r.id)
        if all_projects and ctx.is_admin:
            return recs
        return [r for r in recs if r.project_id == ctx.project_id]

    async def refresh(self, rec):
        return rec

    # -- lifecycle ---------------------------------------------------------------------
    async def create(self, ctx, request: dict, run: bool):
        self.calls.append(("create", dict(request), run))
        fields = dict(request)
        for k in ("nets", "mounts"):
            fields.pop(k, None)
        rec = self.add(project_id=ctx.project_id, user_id=ctx.user_id, status=states.CREATING,
                       **fields)
        self._record(ctx, rec, "create")
        return rec

    async def delete(self, ctx, rec, force=False, stop=False):
        self.calls.append(("delete", rec.uuid, force, stop))
        if force:
            self._check("delete_force", rec)
        elif stop and rec.status == states.RUNNING:
            pass
        else:
            self._check("delete", rec)
        rec.status = states.DELETING
        del self.records[rec.uuid]

    async def _simple(self, ctx, rec, action, new_status):
        self._check(action, rec)
        self.calls.append((action, rec.uuid))
        rec.status = new_status
        self._record(ctx, rec, action)

    async def start(self, ctx, rec):
        await self._simple(ctx, rec, "start", states.RUNNING)

    async def stop(self, ctx, rec, timeout_s=None):
        self.calls.append(("stop_timeout", timeout_s))
        await self._simple(ctx, rec, "stop", states.STOPPED)

    async def reboot(self, ctx, rec, timeout_s=None):
        await self._simple(ctx, rec, "reboot", states.RUNNING)

    async def pause(self, ctx, rec):
        await self._simple(ctx, rec, "pause", states.PAUSED)

    async def unpause(self, ctx, rec):
        await self._simple(ctx, rec, "unpause", states.RUNNING)

    async def kill(self, ctx, rec, signal=None):
        self.calls.append(("kill_signal", signal))
        await self._simple(ctx, rec, "kill", states.STOPPED)

    # -- synchronous ---------------------------------------------------------------------
    async def logs(self, ctx, rec, stdout=True, stderr=True, timestamps=False, tail=None,
                   since=None):
        self._check("logs", rec)
        self.calls.append(("logs", stdout, stderr, timestamps, tail, since))
        return self.logs_text

    async def execute(self, ctx, rec, argv):
        self._check("execute", rec)
        self.calls.append(("execute", list(argv)))
        return ExecResult(exit_code=0, output=" ".join(argv[2:]) + "\n")

    async def top(self, ctx, rec, ps_args=None):
        self._check("top", rec)
        self.calls.append(("top", ps_args))
        return {"Titles": ["PID", "CMD"], "Processes": [["1", "sleep 100"]]}

    async def stats(self, ctx, rec):
        self._check("stats", rec)
        return {"CONTAINER": rec.name, "CPU %": 0.1, "MEM USAGE(MiB)": 1.0,
                "MEM LIMIT(MiB)": 512.0, "MEM %": 0.2, "BLOCK I/O(B)": "0/0",
                "NET I/O(B)": "0/0"}

    async def update(self, ctx, rec, patch):
        self._check("update", rec) if set(patch) - {"name"} else None
        self.calls.append(("update", dict(patch)))
        for k, val in patch.items():
            setattr(rec, k, val)
        rec.updated_at = T0
        return rec

    async def resize_container(self, ctx, rec, cpu=None, memory=None):
        self._check("resize_container", rec)
        if cpu is not None:
            rec.cpu = cpu
        if memory is not None:
            rec.memory = memory
        return rec

    async def get_archive(self, ctx, rec, path):
        self._check("get_archive", rec)
        return b"tar\x00bytes", {"name": path.rsplit("/", 1)[-1], "size": 9, "mode": 420,
                                 "mtime": "2018-03-04T19:48:49Z", "linkTarget": ""}

    async def put_archive(self, ctx, rec, path, data):
        self._check("put_archive", rec)
        self.calls.append(("put_archive", path, data))

    async def commit(self, ctx, rec, repository, tag):
        self._check("commit", rec)
        self.calls.append(("commit", repository, tag))
        return "sha256:abc"

    async def list_actions(self, ctx, rec):
        return list(reversed(self.actions.get(rec.uuid, [])))

    async def get_action(self, ctx, rec, request_id):
        for a in self.actions.get(rec.uuid, []):
            if a.request_id == request_id:
                return a
        raise errors.ActionNotFound(request_id=request_id, ident=rec.uuid)

    # -- node --------------------------------------------------------------------------------
    def runtime_names(self):
        return ["runc"]

    async def host_info(self):
        return dict(HOST_INFO)
