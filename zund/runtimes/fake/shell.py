"""The fake engine's tiny shell: a tokenizer, a parser and an interpreter.

What it understands: ``echo`` (``-n``), ``sleep``, ``true``/``false``/``:``,
``exit N``, ``cat``, ``pwd``, ``hostname``, ``env``/``printenv``, ``id``,
``whoami``, ``ls``, ``mkdir``, ``touch``, ``rm``, ``trap CMD SIG``, ``sh -c
SCRIPT``, ``while COND; do ...; done`` (runs until signalled when COND holds),
``;``/``&&``/``||``, ``$VAR``/``${VAR}`` expansion, single/double quotes,
``>&2``, ``2>&1``, ``> file`` / ``>> file``. Pipes, ``if``, ``for``, ``case``
are refused with a syntax error rather than misread.

The interpreter is a generator: it never blocks and never reads a clock. It
yields what it waits for (``("sleep", s)``, ``("forever",)``, ``("stdin",)``)
and the engine (``engine.py``) decides when it resumes. It works on a
container through a narrow surface: ``env``, ``workdir``, ``hostname``, and
the filesystem methods ``abspath``/``read``/``listdir``/``mkdir``/
``write_file``/``remove``.
"""

from __future__ import annotations

import posixpath
from typing import Iterator

import attrs

from zund.common import errors
from zund.runtimes.base import parse_signal

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
    is the exit status. Output goes to ``emit(stream, text)``. ``traps`` maps a
    :class:`signal.Signals` to the handler script (``""``: ignored)."""

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
                box.remove(path)
            return 0
        if cmd == "trap":
            if not args:
                return 0
            action, sigs = args[0], args[1:]
            for sig in sigs:
                if sig.upper() in ("0", "EXIT"):
                    continue  # the EXIT pseudo-signal: not modelled
                try:
                    which = parse_signal(sig)
                except errors.InvalidInput:
                    emit("stderr", f"trap: {sig}: invalid signal specification\n")
                    return 1
                if action == "-":
                    self.traps.pop(which, None)
                else:
                    self.traps[which] = action
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


def is_executable(argv: list) -> bool:
    """True when ``argv[0]`` names a command this shell implements."""
    return bool(argv) and posixpath.basename(argv[0]) in BUILTINS and argv[0] not in (":",)
