"""An in-memory container engine that behaves like the Docker runtime.

``FakeRuntime`` is *verified*: it passes the same contract suite
(``tests/runtime/contract.py``) as :class:`zund.runtimes.docker.DockerRuntime`,
so higher tiers (manager, API, cluster simulations) can use it without drifting
from the real engine.

What it models:
- images: a set of local images (``zund-test/busybox:latest`` by default) and a
  "registry" that only holds what tests register with :meth:`add_registry_image`;
  any other pull fails with ``ImagePullFailed``;
- containers with docker's state machine and error cases (start of a paused
  container, exec in a stopped one, removing a running one, ...);
- a tiny shell: ``echo``, ``printf``-free, ``sleep``, ``true``/``false``/``:``,
  ``exit N``, ``cat``, ``pwd``, ``hostname``, ``env``/``printenv``, ``id``,
  ``whoami``, ``ls``, ``mkdir``, ``touch``, ``trap CMD SIG``, ``sh -c SCRIPT``,
  ``while true; do ...; done`` (runs until signalled), ``;``/``&&``/``||``,
  ``$VAR``/``${VAR}`` expansion, single/double quotes, ``>&2``, ``2>&1``,
  ``> file`` / ``>> file``;
- signals: PID 1 ignores signals it has no trap for (as in Linux), except
  SIGKILL; ``stop`` sends SIGTERM, waits ``timeout_s`` on the clock, then kills;
- a small filesystem per container for ``get_archive``/``put_archive``/``commit``
  and cgroup-v1 limit files under ``/sys/fs/cgroup`` reflecting cpu/memory.

Time: with ``clock`` (an ``IReactorTime``), ``sleep N`` takes N clock seconds
and ``stop`` honours its timeout; without a clock a main process's ``sleep``
blocks until it is signalled, and exec'd sleeps return at once.

Not modelled: restart policies (stored, never acted on), networking, TTY
semantics, resource enforcement.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import posixpath
import tarfile
import time
from typing import Any, Iterator

import attrs
from twisted.internet import defer, task
from zope.interface import implementer

from zund.common import errors
from zund.runtimes.base import (
    CAPABILITIES,
    LABEL_NODE,
    LABEL_PROJECT,
    LABEL_UUID,
    ContainerSpec,
    ExecResult,
    IRuntime,
    RuntimeState,
    RuntimeStatus,
    runtime_object_name,
)

TEST_IMAGE = "zund-test/busybox:latest"
PULL_POLICIES = ("ifnotpresent", "always", "never")
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12,
           "TERM": 15, "STOP": 19, "CONT": 18}
UNLIMITED_MEMORY = 9223372036854771712
HOST_MEMORY_MB = 2048.0
DIR_MODE_BIT = 1 << 31  # Go's os.ModeDir, as docker reports it in archive stats


def normalize_image(image: str) -> str:
    """``busybox`` -> ``busybox:latest``; references with a tag or digest unchanged."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


def _signal_name(signal: str | int | None) -> str:
    if signal is None or signal == "":
        return "KILL"
    s = str(signal).strip().upper()
    if s.isdigit():
        for name, num in SIGNALS.items():
            if num == int(s):
                return name
        return s
    return s[3:] if s.startswith("SIG") else s


def _utc(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).replace(tzinfo=None)


def _rfc3339nano(ts: float) -> str:
    dt = _utc(ts)
    nanos = int(round((ts - int(ts)) * 1e9)) % 1000000000
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


# -- filesystem ----------------------------------------------------------------

@attrs.define
class FakeFile:
    kind: str  # "file" | "dir" | "link"
    data: bytes = b""
    mode: int = 0o644
    mtime: float = 0.0
    link_target: str = ""


def _base_fs(now: float) -> dict[str, FakeFile]:
    fs = {p: FakeFile("dir", mode=0o755, mtime=now)
          for p in ("/", "/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/etc",
                    "/root", "/proc", "/sys", "/dev")}
    fs["/tmp"] = FakeFile("dir", mode=0o1777, mtime=now)
    fs["/etc/passwd"] = FakeFile(
        "file", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644, now)
    fs["/etc/group"] = FakeFile("file", b"root:x:0:\nnogroup:x:65534:\n", 0o644, now)
    fs["/bin/busybox"] = FakeFile("file", b"\x7fELF", 0o755, now)
    for applet in BUILTINS:
        if applet not in (":", "["):
            fs["/bin/" + applet] = FakeFile("link", mode=0o777, mtime=now, link_target="busybox")
    return fs


@attrs.define
class FakeImage:
    name: str
    id: str
    cmd: list
    entrypoint: list | None
    env: dict
    fs: dict


# -- the tiny shell ----------------------------------------------------------------

class _Op(str):
    """A control operator token (``;``, ``&&``, ``||``, ``\\n``)."""


class ShellExit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class ShellSyntaxError(Exception):
    pass


def tokenize(script: str, env: dict) -> list:
    """Split a script into words and operators, expanding ``$VAR`` outside single quotes."""
    tokens: list = []
    word: list[str] = []
    have_word = False
    i, n = 0, len(script)

    def expand(j: int) -> tuple[str, int]:
        # script[j] == "$"
        if j + 1 < n and script[j + 1] == "{":
            end = script.find("}", j + 2)
            if end < 0:
                raise ShellSyntaxError("bad substitution")
            return str(env.get(script[j + 2:end], "")), end + 1
        k = j + 1
        while k < n and (script[k].isalnum() or script[k] == "_"):
            k += 1
        if k == j + 1:
            if k < n and script[k] in "?$#":
                return {"?": "0", "$": "1", "#": "0"}[script[k]], k + 1
            return "$", j + 1
        return str(env.get(script[j + 1:k], "")), k

    def flush():
        nonlocal word, have_word
        if have_word:
            tokens.append("".join(word))
        word, have_word = [], False

    while i < n:
        c = script[i]
        if c == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word.append(script[i + 1:end])
            have_word = True
            i = end + 1
        elif c == '"':
            i += 1
            have_word = True
            while i < n and script[i] != '"':
                if script[i] == "\\" and i + 1 < n and script[i + 1] in '"\\$`':
                    word.append(script[i + 1])
                    i += 2
                elif script[i] == "$":
                    val, i = expand(i)
                    word.append(val)
                else:
                    word.append(script[i])
                    i += 1
            if i >= n:
                raise ShellSyntaxError("unterminated quoted string")
            i += 1
        elif c == "\\" and i + 1 < n:
            word.append(script[i + 1])
            have_word = True
            i += 2
        elif c == "$":
            val, i = expand(i)
            word.append(val)
            have_word = True
        elif c in " \t":
            flush()
            i += 1
        elif c == "#" and not have_word:
            while i < n and script[i] != "\n":
                i += 1
        elif c in ";\n":
            flush()
            tokens.append(_Op(";"))
            i += 1
        elif script.startswith("&&", i) or script.startswith("||", i):
            flush()
            tokens.append(_Op(script[i:i + 2]))
            i += 2
        elif c in "|&":
            raise ShellSyntaxError(f"unsupported operator {c!r} in the fake shell")
        elif c in "<>" or (c in "12" and script.startswith(">", i + 1) and not have_word):
            flush()
            j = i
            if c in "12":
                j += 1
            if script.startswith(">>", j):
                j += 2
            else:
                j += 1
            if script.startswith("&", j):
                j += 1
                while j < n and script[j].isdigit():
                    j += 1
            tokens.append(_Op(script[i:j].replace(" ", "")))
            i = j
        else:
            word.append(c)
            have_word = True
            i += 1
    flush()
    return tokens


@attrs.define
class Simple:
    argv: list
    redirects: list  # [(op, target)]


@attrs.define
class Loop:
    cond: list  # list of statements
    body: list


def parse(tokens: list) -> list:
    """tokens -> [(connector, node)] with connector in {None, ';', '&&', '||'}."""
    pos = 0

    def parse_list(stop_words: tuple) -> list:
        nonlocal pos
        items: list = []
        connector = None
        while pos < len(tokens):
            tok = tokens[pos]
            if isinstance(tok, _Op) and tok in (";", "&&", "||"):
                if tok in ("&&", "||"):
                    connector = str(tok)
                pos += 1
                continue
            if not isinstance(tok, _Op) and tok in stop_words:
                return items
            if not isinstance(tok, _Op) and tok == "while":
                pos += 1
                cond = parse_list(("do",))
                expect("do")
                body = parse_list(("done",))
                expect("done")
                items.append((connector, Loop(cond, body)))
            elif not isinstance(tok, _Op) and tok in ("if", "for", "case", "until"):
                raise ShellSyntaxError(f"'{tok}' is not supported by the fake shell")
            else:
                items.append((connector, parse_simple()))
            connector = None
        if stop_words:
            raise ShellSyntaxError(f"missing {stop_words[0]!r}")
        return items

    def expect(word: str) -> None:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != word:
            raise ShellSyntaxError(f"expected {word!r}")
        pos += 1

    def parse_simple() -> Simple:
        nonlocal pos
        argv, redirects = [], []
        while pos < len(tokens):
            tok = tokens[pos]
            if isinstance(tok, _Op):
                if tok in (";", "&&", "||"):
                    break
                if tok.endswith("&1") or tok.endswith("&2"):
                    redirects.append((str(tok), None))
                    pos += 1
                    continue
                if pos + 1 >= len(tokens) or isinstance(tokens[pos + 1], _Op):
                    raise ShellSyntaxError("redirection without a target")
                redirects.append((str(tok), tokens[pos + 1]))
                pos += 2
                continue
            argv.append(tok)
            pos += 1
        return Simple(argv, redirects)

    return parse_list(())


BUILTINS = ("echo", "true", "false", ":", "exit", "sleep", "cat", "pwd", "hostname", "env",
            "printenv", "id", "whoami", "ls", "mkdir", "touch", "trap", "sh", "ash", "rm")


class Shell:
    """Executes parsed commands as a generator that yields blocking requests:
    ``("sleep", seconds)``, ``("forever",)`` or ``("stdin",)``; its return value
    is the exit status. Output goes to ``emit(stream, text)``."""

    def __init__(self, box: "FakeContainer", emit, traps: dict):
        self.box = box
        self.emit = emit
        self.traps = traps

    @property
    def env(self) -> dict:
        return self.box.env

    def run_argv(self, argv: list) -> Iterator:
        return (yield from self._command(list(argv), self.emit))

    def run_script(self, script: str) -> Iterator:
        try:
            items = parse(tokenize(script, self.env))
        except ShellSyntaxError as e:
            self.emit("stderr", f"sh: syntax error: {e}\n")
            return 2
        return (yield from self._run_list(items))

    def _run_list(self, items: list) -> Iterator:
        status = 0
        for connector, node in items:
            if connector == "&&" and status != 0:
                continue
            if connector == "||" and status == 0:
                continue
            if isinstance(node, Loop):
                status = yield from self._run_list(node.cond)
                if status == 0:
                    # ``while true`` style loops run until signalled; the body's
                    # output is not reproduced.
                    yield ("forever",)
                status = 0
            else:
                status = yield from self._simple(node)
        return status

    def _simple(self, node: Simple) -> Iterator:
        out_stream, err_stream = "stdout", "stderr"
        files: dict[str, tuple[str, bool]] = {}
        for op, target in node.redirects:
            fd = "2" if op.startswith("2") else "1"
            if op.endswith("&2"):
                if fd == "1":
                    out_stream = "stderr"
            elif op.endswith("&1"):
                if fd == "2":
                    err_stream = out_stream
            elif op.lstrip("12") in (">", ">>"):
                if target == "/dev/null":
                    if fd == "1":
                        out_stream = "null"
                    else:
                        err_stream = "null"
                else:
                    files[fd] = (self.box.abspath(target), op.endswith(">>"))
                    if fd == "1":
                        out_stream = "file1"
                    else:
                        err_stream = "file2"
            # input redirection ("<") is ignored: stdin is empty
        captured: dict[str, list] = {"file1": [], "file2": []}

        def emit(stream: str, text: str) -> None:
            target = out_stream if stream == "stdout" else err_stream
            if target == "null":
                return
            if target in captured:
                captured[target].append(text)
                return
            self.emit(target, text)

        try:
            return (yield from self._command(node.argv, emit))
        finally:
            for key, fd in (("file1", "1"), ("file2", "2")):
                if fd in files:
                    path, append = files[fd]
                    self.box.write_file(path, "".join(captured[key]).encode(), append)

    def _command(self, argv: list, emit) -> Iterator:
        if not argv:
            return 0
        cmd, args = posixpath.basename(argv[0]), argv[1:]
        box = self.box
        if cmd == "echo":
            newline = True
            if args and args[0] == "-n":
                newline, args = False, args[1:]
            emit("stdout", " ".join(args) + ("\n" if newline else ""))
            return 0
        if cmd in ("true", ":"):
            return 0
        if cmd == "false":
            return 1
        if cmd == "exit":
            raise ShellExit(int(args[0]) & 0xFF if args and args[0].lstrip("-").isdigit() else 0)
        if cmd == "sleep":
            try:
                seconds = sum(float(a.rstrip("s")) for a in args)
            except ValueError:
                emit("stderr", f"sleep: invalid number '{args[0] if args else ''}'\n")
                return 1
            yield ("sleep", seconds)
            return 0
        if cmd == "cat":
            if not args or args == ["-"]:
                yield ("stdin",)
                return 0
            status = 0
            for path in args:
                f = box.read(path)
                if f is None or f.kind == "dir":
                    what = "Is a directory" if f is not None else "No such file or directory"
                    emit("stderr", f"cat: can't open '{path}': {what}\n")
                    status = 1
                else:
                    emit("stdout", f.data.decode("utf-8", errors="replace"))
            return status
        if cmd == "pwd":
            emit("stdout", box.workdir + "\n")
            return 0
        if cmd == "hostname":
            emit("stdout", box.hostname + "\n")
            return 0
        if cmd == "env" or (cmd == "printenv" and not args):
            emit("stdout", "".join(f"{k}={v}\n" for k, v in self.env.items()))
            return 0
        if cmd == "printenv":
            missing = 0
            for name in args:
                if name in self.env:
                    emit("stdout", f"{self.env[name]}\n")
                else:
                    missing = 1
            return missing
        if cmd == "id":
            emit("stdout", "uid=0(root) gid=0(root) groups=0(root)\n")
            return 0
        if cmd == "whoami":
            emit("stdout", "root\n")
            return 0
        if cmd == "ls":
            paths = [a for a in args if not a.startswith("-")] or [box.workdir]
            status = 0
            for path in paths:
                names = box.listdir(path)
                if names is None:
                    emit("stderr", f"ls: {path}: No such file or directory\n")
                    status = 1
                else:
                    emit("stdout", "".join(n + "\n" for n in names))
            return status
        if cmd == "mkdir":
            parents = "-p" in args
            for path in (a for a in args if not a.startswith("-")):
                if not box.mkdir(path, parents):
                    emit("stderr", f"mkdir: can't create directory '{path}'\n")
                    return 1
            return 0
        if cmd == "touch":
            for path in args:
                if box.read(path) is None:
                    box.write_file(box.abspath(path), b"", True)
            return 0
        if cmd == "rm":
            for path in (a for a in args if not a.startswith("-")):
                box.fs.pop(box.abspath(path), None)
            return 0
        if cmd == "trap":
            if not args:
                return 0
            action, sigs = args[0], args[1:]
            for sig in sigs:
                name = _signal_name(sig)
                if action == "-":
                    self.traps.pop(name, None)
                else:
                    self.traps[name] = action
            return 0
        if cmd in ("sh", "ash"):
            if args and args[0] == "-c":
                if len(args) < 2:
                    emit("stderr", "sh: -c requires an argument\n")
                    return 2
                sub = Shell(box, emit, self.traps)
                return (yield from sub.run_script(args[1]))
            yield ("stdin",)
            return 0
        emit("stderr", f"sh: {argv[0]}: not found\n")
        return 127


def _is_executable(argv: list) -> bool:
    return bool(argv) and posixpath.basename(argv[0]) in BUILTINS and argv[0] not in (":",)


# -- containers -------------------------------------------------------------------

@attrs.define(eq=False)
class Process:
    """One running program: the container's main process or an exec."""

    gen: Any
    traps: dict
    main: bool
    pending: Any = None          # IDelayedCall of a sleep in progress
    blocked: str | None = None   # "forever" | "stdin" | "sleep" | "paused"
    done: defer.Deferred = attrs.field(factory=defer.Deferred)
    exit_code: int | None = None
    output: list = attrs.field(factory=list)


@attrs.define(eq=False)
class FakeContainer:
    spec: ContainerSpec
    id: str
    name: str
    image: FakeImage
    argv: list
    env: dict
    hostname: str
    workdir: str
    fs: dict
    labels: dict
    created_at: float
    cpu: float | None
    memory_mb: int | None
    status: RuntimeStatus = RuntimeStatus.CREATED
    exit_code: int = 0
    error: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    proc: Process | None = None
    log: list = attrs.field(factory=list)  # [(ts, stream, line)]
    now: Any = None

    # filesystem helpers (paths are relative to workdir when not absolute)
    def abspath(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def read(self, path: str) -> FakeFile | None:
        path = self.abspath(path)
        dynamic = self._cgroup_file(path)
        if dynamic is not None:
            return FakeFile("file", (dynamic + "\n").encode(), 0o644, self.created_at)
        f = self.fs.get(path)
        seen = 0
        while f is not None and f.kind == "link" and seen < 8:
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), f.link_target))
            f = self.fs.get(path)
            seen += 1
        return f

    def _cgroup_file(self, path: str) -> str | None:
        if path == "/sys/fs/cgroup/memory/memory.limit_in_bytes":
            return str(self.memory_mb * 1024 * 1024 if self.memory_mb else UNLIMITED_MEMORY)
        if path == "/sys/fs/cgroup/cpu/cpu.cfs_quota_us":
            return str(max(1000, int(100000 * self.cpu)) if self.cpu else -1)
        if path == "/sys/fs/cgroup/cpu/cpu.cfs_period_us":
            return "100000"
        if path == "/sys/fs/cgroup/cpu/cpu.shares":
            return str(max(2, int(1024 * self.cpu)) if self.cpu else 1024)
        return None

    def listdir(self, path: str) -> list | None:
        path = self.abspath(path)
        f = self.fs.get(path)
        if f is None:
            return None
        if f.kind != "dir":
            return [posixpath.basename(path)]
        prefix = path.rstrip("/") + "/"
        return sorted(p[len(prefix):] for p in self.fs
                      if p.startswith(prefix) and "/" not in p[len(prefix):] and p != path)

    def mkdir(self, path: str, parents: bool) -> bool:
        path = self.abspath(path)
        parent = posixpath.dirname(path)
        if parent not in self.fs:
            if not parents or not self.mkdir(parent, True):
                return False
        existing = self.fs.get(path)
        if existing is not None:
            return existing.kind == "dir" and parents
        self.fs[path] = FakeFile("dir", mode=0o755, mtime=self.now())
        return True

    def write_file(self, path: str, data: bytes, append: bool) -> None:
        old = self.fs.get(path)
        if append and old is not None and old.kind == "file":
            data = old.data + data
        self.fs[path] = FakeFile("file", data, old.mode if old else 0o644, self.now())


def _make_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@implementer(IRuntime)
class FakeRuntime:
    """In-memory engine; see the module docstring. One instance is one engine."""

    def __init__(self, node_name: str, clock=None, *,
                 capabilities: frozenset = CAPABILITIES,
                 name: str = "runc",
                 execute_timeout_s: float = 60.0,
                 local_images: tuple = (TEST_IMAGE,)):
        self.node_name = node_name
        self.clock = clock
        self.name = name
        self.capabilities = frozenset(capabilities)
        self.execute_timeout_s = execute_timeout_s
        self.images: dict[str, FakeImage] = {}
        self.registry: set[str] = set()
        self.containers: dict[str, FakeContainer] = {}
        self.is_open = False
        self._counter = 0
        self._failures: dict[str, list] = {}
        for image in local_images:
            self.add_local_image(image)

    # -- test hooks ------------------------------------------------------------

    def add_registry_image(self, image: str) -> None:
        """Make ``image`` pullable."""
        self.registry.add(normalize_image(image))

    def add_local_image(self, image: str) -> None:
        image = normalize_image(image)
        self.images[image] = FakeImage(image, "sha256:" + _make_id("image", image), ["sh"], None,
                                       {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                       _base_fs(self._now()))

    def fail_next(self, operation: str, error: Exception) -> None:
        """Make the next call of ``operation`` (a method name) raise ``error``."""
        self._failures.setdefault(operation, []).append(error)

    def vanish(self, uuid: str) -> None:
        """The engine loses the container behind zund's back."""
        box = self.containers.pop(runtime_object_name(uuid), None)
        if box is not None and box.proc is not None:
            self._abandon(box.proc)

    def exit_process(self, uuid: str, exit_code: int) -> None:
        """The container's main process exits on its own with ``exit_code``."""
        box = self._get(uuid)
        if box.status in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED) and box.proc is not None:
            self._abandon(box.proc)
            self._finish(box, box.proc, exit_code)

    # -- plumbing ----------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.seconds() if self.clock is not None else time.time()

    def _check(self, operation: str) -> None:
        queue = self._failures.get(operation)
        if queue:
            raise queue.pop(0)

    def _require(self, capability: str, action: str) -> None:
        if capability not in self.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=self.name)

    def _get(self, uuid: str) -> FakeContainer:
        name = runtime_object_name(uuid)
        box = self.containers.get(name)
        if box is None:
            raise errors.RuntimeObjectNotFound(name=name)
        return box

    def _not_running(self, box: FakeContainer) -> errors.RuntimeFailure:
        return errors.RuntimeFailure(reason=f"Container {box.id} is not running")

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        self._check("open")
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    async def ensure_image(self, image: str, pull_policy: str) -> None:
        self._check("ensure_image")
        policy = (pull_policy or "ifnotpresent").lower()
        if policy not in PULL_POLICIES:
            raise errors.InvalidInput(field="image_pull_policy",
                                      reason=f"must be one of {', '.join(PULL_POLICIES)}")
        ref = normalize_image(image)
        if policy != "always" and ref in self.images:
            return
        if policy == "never":
            raise errors.ImageNotFound(image=image)
        if ref not in self.registry:
            raise errors.ImagePullFailed(
                image=image, reason=f"manifest for {ref} not found: registry unreachable or no such image")
        self.add_local_image(ref)

    # -- containers ---------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> RuntimeState:
        self._check("create")
        image = self.images.get(normalize_image(spec.image))
        if image is None:
            raise errors.ImageNotFound(image=spec.image)
        name = runtime_object_name(spec.uuid)
        if name in self.containers:
            raise errors.RuntimeFailure(
                reason=f'Conflict. The container name "/{name}" is already in use')
        if spec.restart_policy and spec.auto_remove and \
                str(spec.restart_policy.get("Name") or "no") != "no":
            raise errors.RuntimeFailure(
                reason="Conflicting options: AutoRemove and restart policy")
        self._counter += 1
        cid = _make_id("container", name, str(self._counter), str(self._now()))
        if spec.entrypoint is not None:
            argv = list(spec.entrypoint) + list(spec.command or [])
        else:
            argv = list(image.entrypoint or []) + list(
                spec.command if spec.command is not None else image.cmd)
        hostname = spec.hostname or cid[:12]
        env = dict(image.env)
        env.update({"HOSTNAME": hostname, "HOME": "/root"})
        env.update({str(k): str(v) for k, v in (spec.environment or {}).items()})
        labels = {str(k): str(v) for k, v in (spec.labels or {}).items()}
        labels.update({LABEL_UUID: spec.uuid, LABEL_NODE: spec.node,
                       LABEL_PROJECT: spec.project_id})
        box = FakeContainer(
            spec=spec, id=cid, name=name, image=image, argv=argv, env=env,
            hostname=hostname, workdir=posixpath.normpath(spec.workdir or "/"),
            fs={p: attrs.evolve(f) for p, f in image.fs.items()}, labels=labels,
            created_at=self._now(), cpu=spec.cpu, memory_mb=spec.memory_mb, now=self._now)
        box.mkdir(box.workdir, True)
        self.containers[name] = box
        return self._state(box)

    def _state(self, box: FakeContainer) -> RuntimeState:
        done = box.status in (RuntimeStatus.EXITED, RuntimeStatus.DEAD)
        return RuntimeState(
            uuid=box.spec.uuid, runtime_id=box.id, status=box.status,
            exit_code=box.exit_code if done else None,
            started_at=_utc(box.started_at) if box.started_at is not None else None,
            finished_at=_utc(box.finished_at) if box.finished_at is not None else None,
            hostname=box.hostname,
            ports=tuple(sorted({int(str(k).split("/")[0]) for k in box.spec.exposed_ports or {}})),
            error=box.error or None,
            node=box.labels.get(LABEL_NODE), project_id=box.labels.get(LABEL_PROJECT))

    async def start(self, uuid: str) -> None:
        self._check("start")
        box = self._get(uuid)
        if box.status == RuntimeStatus.RUNNING:
            return
        if box.status == RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(reason="cannot start a paused container, try unpause instead")
        if not _is_executable(box.argv):
            what = box.argv[0] if box.argv else ""
            box.exit_code = 127
            box.error = (f'OCI runtime create failed: exec: "{what}": '
                         "executable file not found in $PATH: unknown")
            raise errors.RuntimeFailure(reason=box.error)
        box.status = RuntimeStatus.RUNNING
        box.started_at = self._now()  # finished_at keeps the previous run's, as docker does
        box.error = ""
        box.exit_code = 0
        proc = Process(gen=None, traps={}, main=True)

        def emit(stream: str, text: str) -> None:
            self._log(box, stream, text)

        proc.gen = Shell(box, emit, proc.traps).run_argv(box.argv)
        box.proc = proc
        self._advance(box, proc, None)

    def _log(self, box: FakeContainer, stream: str, text: str) -> None:
        now = self._now()
        for line in text.splitlines(keepends=True):
            box.log.append((now, stream, line))

    def _advance(self, box: FakeContainer | None, proc: Process, value: Any) -> None:
        """Run ``proc`` until it blocks or exits."""
        proc.pending = None
        proc.blocked = None
        if box is not None and box.status == RuntimeStatus.PAUSED and proc.main:
            proc.blocked = "paused"
            return
        try:
            while True:
                request = proc.gen.send(value)
                value = None
                kind = request[0]
                if kind == "sleep":
                    if self.clock is not None:
                        proc.blocked = "sleep"
                        proc.pending = self.clock.callLater(
                            max(0.0, request[1]), self._advance, box, proc, None)
                        return
                    if proc.main:
                        proc.blocked = "forever"
                        return
                    continue  # exec without a clock: time does not pass
                if kind == "stdin":
                    if proc.main and box is not None and box.spec.interactive:
                        proc.blocked = "stdin"
                        return
                    continue  # stdin is empty: EOF
                proc.blocked = "forever"
                return
        except StopIteration as stop:
            self._finish(box, proc, int(stop.value or 0))
        except ShellExit as e:
            self._finish(box, proc, e.code)

    def _abandon(self, proc: Process) -> None:
        if proc.pending is not None and proc.pending.active():
            proc.pending.cancel()
        proc.pending = None
        proc.gen.close()

    def _finish(self, box: FakeContainer | None, proc: Process, code: int) -> None:
        proc.exit_code = code
        if proc.main and box is not None and box.proc is proc:
            box.proc = None
            box.status = RuntimeStatus.EXITED
            box.exit_code = code
            box.finished_at = self._now()
            if box.spec.auto_remove:
                self.containers.pop(box.name, None)
        if not proc.done.called:
            proc.done.callback(code)

    def _signal(self, box: FakeContainer, sig: str) -> None:
        proc = box.proc
        if proc is None:
            return
        if sig == "KILL":
            self._abandon(proc)
            self._finish(box, proc, 128 + SIGNALS["KILL"])
            return
        handler = proc.traps.get(sig)
        if handler is None:
            return  # PID 1 ignores signals it installed no handler for
        if handler == "":
            return  # trap "" SIG: explicitly ignored
        # Run the handler to completion; a handler's own sleeps are not modelled.
        gen = Shell(box, lambda s, t: self._log(box, s, t), proc.traps).run_script(handler)
        try:
            gen.send(None)
            while True:
                gen.send(None)
        except StopIteration:
            return  # handler returned: the interrupted program carries on
        except ShellExit as e:
            self._abandon(proc)
            self._finish(box, proc, e.code)

    async def stop(self, uuid: str, timeout_s: float) -> None:
        self._check("stop")
        box = self._get(uuid)
        if box.status not in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            return
        proc = box.proc
        if box.status == RuntimeStatus.PAUSED:
            await self._resume(box)
        self._signal(box, "TERM")
        if box.proc is proc and proc is not None and self.clock is not None and timeout_s:
            # Like docker: wait up to timeout_s for the process to exit, then kill.
            waiter: defer.Deferred = defer.Deferred()

            def _wake(result=None):
                if not waiter.called:
                    waiter.callback(None)
                return result

            timer = self.clock.callLater(max(0.0, float(timeout_s)), _wake)
            proc.done.addBoth(_wake)
            await waiter
            if timer.active():
                timer.cancel()
        if box.proc is proc and proc is not None:
            self._signal(box, "KILL")

    async def restart(self, uuid: str, timeout_s: float) -> None:
        self._check("restart")
        await self.stop(uuid, timeout_s)
        await self.start(uuid)

    async def kill(self, uuid: str, signal: str | None) -> None:
        self._check("kill")
        box = self._get(uuid)
        if box.status not in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            raise errors.RuntimeFailure(
                reason=f"Cannot kill container: {box.id}: Container {box.id} is not running")
        sig = _signal_name(signal)
        if sig not in SIGNALS:
            raise errors.RuntimeFailure(reason=f"Invalid signal: {signal}")
        if box.status == RuntimeStatus.PAUSED and sig != "KILL":
            return  # delivered to a frozen process: nothing happens until unpause
        self._signal(box, sig)

    async def pause(self, uuid: str) -> None:
        self._require("pause", "pause")
        self._check("pause")
        box = self._get(uuid)
        if box.status == RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(reason=f"Container {box.id} is already paused")
        if box.status != RuntimeStatus.RUNNING:
            raise self._not_running(box)
        box.status = RuntimeStatus.PAUSED

    async def unpause(self, uuid: str) -> None:
        self._require("pause", "unpause")
        self._check("unpause")
        box = self._get(uuid)
        if box.status != RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(reason=f"Container {box.id} is not paused")
        await self._resume(box)

    async def _resume(self, box: FakeContainer) -> None:
        box.status = RuntimeStatus.RUNNING
        proc = box.proc
        if proc is not None and proc.blocked == "paused":
            self._advance(box, proc, None)

    async def remove(self, uuid: str, force: bool) -> None:
        self._check("remove")
        name = runtime_object_name(uuid)
        box = self.containers.get(name)
        if box is None:
            return
        if box.status in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            if not force:
                what = "paused" if box.status == RuntimeStatus.PAUSED else "running"
                raise errors.RuntimeFailure(
                    reason=f"You cannot remove a {what} container {box.id}. "
                           "Stop the container before attempting removal or force remove")
            if box.proc is not None:
                self._abandon(box.proc)
                self._finish(box, box.proc, 137)
        self.containers.pop(name, None)

    async def inspect(self, uuid: str) -> RuntimeState:
        self._check("inspect")
        return self._state(self._get(uuid))

    async def list(self, node: str) -> list:
        self._check("list")
        return [self._state(b) for b in self.containers.values()
                if b.labels.get(LABEL_NODE) == node]

    async def logs(self, uuid: str, stdout: bool = True, stderr: bool = True,
                   timestamps: bool = False, tail: int | None = None,
                   since: float | None = None) -> str:
        self._check("logs")
        if since is not None:
            self._require("logs_since", "logs since")
        box = self._get(uuid)
        wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        entries = box.log
        if tail is not None:
            # Like docker's json-file driver: tail the whole log, then filter.
            entries = entries[-int(tail):] if int(tail) > 0 else []
        lines = [(ts, line) for ts, stream, line in entries
                 if stream in wanted and (not since or ts >= float(since))]
        if timestamps:
            return "".join(f"{_rfc3339nano(ts)} {line}" for ts, line in lines)
        return "".join(line for _, line in lines)

    async def execute(self, uuid: str, argv: list) -> ExecResult:
        self._require("exec", "execute")
        self._check("execute")
        box = self._get(uuid)
        if box.status == RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(
                reason=f"Container {box.id} is paused, unpause the container before exec")
        if box.status != RuntimeStatus.RUNNING:
            raise self._not_running(box)
        argv = [str(a) for a in argv]
        if not _is_executable(argv):
            return ExecResult(126, "OCI runtime exec failed: exec failed: unable to start "
                                   f'container process: exec: "{argv[0] if argv else ""}": '
                                   "executable file not found in $PATH: unknown\r\n")
        proc = Process(gen=None, traps={}, main=False)
        proc.gen = Shell(box, lambda s, t: proc.output.append(t), proc.traps).run_argv(argv)
        self._advance(box, proc, None)
        if not proc.done.called:
            if proc.blocked == "forever" or self.clock is None:
                if self.clock is not None:
                    await task.deferLater(self.clock, self.execute_timeout_s, lambda: None)
                self._abandon(proc)
                raise errors.RuntimeFailure(
                    reason=f"command did not finish within {self.execute_timeout_s:g}s")
            timer = self.clock.callLater(self.execute_timeout_s, proc.done.cancel)
            try:
                await proc.done
            except defer.CancelledError:
                self._abandon(proc)
                raise errors.RuntimeFailure(
                    reason=f"command did not finish within {self.execute_timeout_s:g}s") from None
            finally:
                if timer.active():
                    timer.cancel()
        return ExecResult(int(proc.exit_code or 0), "".join(proc.output))

    async def top(self, uuid: str, ps_args: str | None = None) -> dict:
        self._require("top", "top")
        self._check("top")
        box = self._get(uuid)
        if box.status not in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            raise self._not_running(box)
        stime = _utc(box.started_at or self._now()).strftime("%H:%M")
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
                "Processes": [["root", "1000", "999", "0", stime, "?", "00:00:00",
                               " ".join(box.argv)]]}

    async def stats(self, uuid: str) -> dict:
        self._require("stats", "stats")
        self._check("stats")
        box = self._get(uuid)
        running = box.status in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED)
        limit = float(box.memory_mb) if box.memory_mb else HOST_MEMORY_MB
        usage = 0.5 if running else 0.0
        return {"CONTAINER": box.name, "CPU %": 0.0, "MEM USAGE(MiB)": usage,
                "MEM LIMIT(MiB)": limit if running else 0.0,
                "MEM %": (usage / limit * 100.0) if running else 0.0,
                "BLOCK I/O(B)": "0/0", "NET I/O(B)": "0/0"}

    async def update(self, uuid: str, cpu: float | None, memory_mb: int | None) -> None:
        self._require("update", "update")
        self._check("update")
        box = self._get(uuid)
        if cpu is not None:
            box.cpu = cpu
        if memory_mb is not None:
            box.memory_mb = memory_mb

    # -- archives -----------------------------------------------------------------------

    def _missing_path(self, box: FakeContainer, path: str) -> errors.ResourceNotFound:
        return errors.ResourceNotFound(f"Could not find the file {path} in container {box.name}")

    async def get_archive(self, uuid: str, path: str) -> tuple:
        self._require("archive", "get_archive")
        self._check("get_archive")
        box = self._get(uuid)
        full = box.abspath(path)
        f = box.fs.get(full)
        if f is None:
            raise self._missing_path(box, path)
        name = posixpath.basename(full) or "/"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            self._add_to_tar(tar, box, full, name)
        mode = (f.mode | DIR_MODE_BIT) if f.kind == "dir" else f.mode
        if f.kind == "link":
            mode |= 1 << 27  # Go's os.ModeSymlink
        stat = {"name": name, "size": len(f.data) if f.kind == "file" else (4096 if f.kind == "dir" else len(f.link_target)),
                "mode": mode,
                "mtime": _utc(f.mtime).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "linkTarget": f.link_target}
        return buf.getvalue(), stat

    def _add_to_tar(self, tar: tarfile.TarFile, box: FakeContainer, path: str, arcname: str) -> None:
        f = box.fs[path]
        info = tarfile.TarInfo(arcname)
        info.mode = f.mode & 0o7777
        info.mtime = int(f.mtime)
        if f.kind == "dir":
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
            prefix = path.rstrip("/") + "/"
            for child in sorted(p for p in box.fs if p.startswith(prefix)
                                and "/" not in p[len(prefix):] and p != path):
                self._add_to_tar(tar, box, child, arcname.rstrip("/") + "/" + child[len(prefix):])
        elif f.kind == "link":
            info.type = tarfile.SYMTYPE
            info.linkname = f.link_target
            tar.addfile(info)
        else:
            info.size = len(f.data)
            tar.addfile(info, io.BytesIO(f.data))

    async def put_archive(self, uuid: str, path: str, data: bytes) -> None:
        self._require("archive", "put_archive")
        self._check("put_archive")
        box = self._get(uuid)
        dest = box.abspath(path)
        target = box.fs.get(dest)
        if target is None:
            raise self._missing_path(box, path)
        if target.kind != "dir":
            raise errors.RuntimeFailure(reason=f"extraction point is not a directory: {path}")
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for member in tar.getmembers():
                    rel = posixpath.normpath(member.name.lstrip("/"))
                    if rel in (".", "") or rel.startswith(".."):
                        continue
                    full = posixpath.join(dest, rel)
                    box.mkdir(posixpath.dirname(full), True)
                    if member.isdir():
                        box.fs[full] = FakeFile("dir", mode=member.mode or 0o755, mtime=member.mtime)
                    elif member.issym():
                        box.fs[full] = FakeFile("link", mode=0o777, mtime=member.mtime,
                                                link_target=member.linkname)
                    elif member.isfile():
                        content = tar.extractfile(member).read()
                        box.fs[full] = FakeFile("file", content, member.mode, member.mtime)
        except tarfile.TarError as e:
            raise errors.RuntimeFailure(reason=f"invalid tar archive: {e}") from e

    async def commit(self, uuid: str, repository: str, tag: str | None = None) -> str:
        self._require("commit", "commit")
        self._check("commit")
        box = self._get(uuid)
        ref = normalize_image(f"{repository}:{tag}" if tag else repository)
        self._counter += 1
        image_id = "sha256:" + _make_id("commit", box.id, ref, str(self._counter))
        self.images[ref] = FakeImage(ref, image_id, list(box.argv), None, dict(box.env),
                                     {p: attrs.evolve(f) for p, f in box.fs.items()})
        return image_id
