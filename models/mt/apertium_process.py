"""A long-running Apertium pipeline for one mode, fed one text at a time.

Starting ``apertium`` runs a shell script over a dozen programs that each load their
transducers: about 140 ms a sentence. Kept running, a sentence costs a few milliseconds.

Framing: the pipeline's programs run in null-flush mode (``-z``, added by
``apertium-wblank-mode -z`` exactly as the ``apertium`` script does), so each one, on reading a
NUL, writes out everything so far followed by the NUL. The txt deformatter and reformatter that
``apertium -f txt`` puts around them (apertium-destxt, apertium-retxt) cannot stay running: they
read to end of file and drop NULs. ``deformat`` and ``reformat`` do their job here instead (the
txt format is a dozen escaped characters, superblanks for odd blanks and a ``.[]`` end mark;
tests check them against the real programs). A text goes in as ``deformat(text)`` and a NUL; its
answer is everything before the next NUL.

The stages are started directly, without a shell, in one process group: a timeout kills the
whole group and every stage is reaped here, whatever init does with orphans.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from models.errors import EngineUnavailable

log = logging.getLogger(__name__)

# apertium-destxt escapes these and wraps blank runs other than one space in a superblank.
_ESCAPED = re.compile(r"([][\\/@<>^${}])")
_BLANKS = re.compile(r"[ \n\t\r~]+")
_TRAILING_BLANKS = re.compile(r"[ \n\t\r~]*\Z")
# apertium-retxt, as a flex scanner does it: the longest of these at each position wins.
_REFORMAT = re.compile(r"\[\\@|\.\[\]|\\([][\\/@<>^${}])|[][]")
# What the apertium script passes as $1 and $2 for "-u" (no unknown-word marks) and no "-a".
_MODE_ARGS = {"$1": "-n", "$2": ""}
_OPERATORS = set("|&;<>()")
_CHUNK = 65536


class NoPipeline(Exception):
    """The mode's pipeline cannot be run directly here (no mode file, wblank tool or odd shell)."""


def deformat(text: str) -> str:
    """``apertium-destxt`` on one text: escapes, superblanks and ``.[]`` sentence-end marks."""

    def blank(match: re.Match[str]) -> str:
        run = match.group(0)
        if run == " ":
            return run
        # A blank line ends a sentence for destxt.
        end = ".[]" if "\n\n" in run or "\r\n\r\n" in run else ""
        return f"{end}[{run}]"

    trailing = _TRAILING_BLANKS.search(text)
    cut = trailing.start() if trailing else len(text)
    body = _BLANKS.sub(blank, _ESCAPED.sub(r"\\\1", text[:cut]))
    tail = text[cut:]
    if tail not in ("", " "):
        tail = f"[{tail}]"
    # destxt ends the text with one end mark, before trailing blanks.
    return f"{body}.[]{tail}"


def reformat(raw: str) -> str:
    """``apertium-retxt`` on one answer: unescape, drop brackets and ``.[]`` end marks."""
    return _REFORMAT.sub(lambda m: "@" if m.group(0) == "[\\@" else (m.group(1) or ""), raw)


def parse_pipeline(script: str) -> list[list[str]]:
    """Argv of each stage of a mode's ``a x | b y`` shell line, with $1/$2 as for ``-u``."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars="".join(sorted(_OPERATORS)))
    lexer.whitespace_split = True
    stages: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":  # noqa: S105  (a pipe, not a password)
            stages.append([])
        elif token in _MODE_ARGS:
            if _MODE_ARGS[token]:
                stages[-1].append(_MODE_ARGS[token])
        elif set(token) <= _OPERATORS or token.startswith("$") or "`" in token or "$(" in token:
            raise NoPipeline(f"mode pipeline uses shell syntax this runner lacks: {token!r}")
        else:
            stages[-1].append(token)
    if not all(stages):
        raise NoPipeline(f"empty stage in mode pipeline {script!r}")
    return stages


def mode_pipeline(command: str, mode: str) -> tuple[list[list[str]], dict[str, str]]:
    """Stages and environment of ``mode``, found where the ``apertium`` script looks."""
    found = shutil.which(command)
    if found is None:
        raise NoPipeline(f"{command} is not on PATH")
    bindir = Path(found).resolve().parent
    datadir = Path(os.environ.get("APERTIUM_DATADIR") or bindir.parent / "share" / "apertium")
    mode_file = datadir / "modes" / f"{mode}.mode"
    wblank = bindir / "apertium-wblank-mode"
    if not wblank.is_file():
        wblank = Path(shutil.which("apertium-wblank-mode") or wblank)
    if not mode_file.is_file() or not wblank.is_file():
        raise NoPipeline(f"no {mode_file} or {wblank}")
    try:
        done = subprocess.run(  # noqa: S603  (fixed argv, no shell)
            [str(wblank), "-z", str(mode_file)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NoPipeline(f"{wblank} -z {mode_file} failed: {exc}") from exc
    # Same environment as the apertium script gives its pipeline.
    env = dict(os.environ, LC_CTYPE="C.UTF-8")
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return parse_pipeline(done.stdout), env


class _Died(Exception):
    pass


class _TimedOut(Exception):
    pass


class ApertiumProcess:
    """One mode's pipeline, started on first use, one text at a time under a lock.

    ``stages`` (argv lists) replaces the mode's own pipeline, for tests.
    """

    def __init__(
        self,
        mode: str,
        command: str = "apertium",
        stages: Sequence[Sequence[str]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.mode = mode
        self.command = command
        self._stages = [list(argv) for argv in stages] if stages is not None else None
        self._env = env
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the running stages (the first is the group id); empty when stopped."""
        return [proc.pid for proc in self._procs]

    def translate(self, text: str, timeout_s: float) -> str:
        """Blocking: one text through the pipeline; restarts a dead pipeline once.

        The timeout covers one text, and the pipeline's start-up for the first one.
        """
        payload = deformat(text.replace("\0", "")).encode("utf-8", "replace") + b"\0"
        with self._lock:
            try:
                return self._translate_locked(payload, timeout_s)
            finally:
                if self._closed:
                    self._stop(signal.SIGKILL)  # close() came while this text was in flight

    def close(self, grace_s: float = 2.0) -> None:
        """Stop the pipeline: SIGTERM, then SIGKILL after ``grace_s``; later calls fail."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._stop(signal.SIGTERM, grace_s)
            finally:
                self._lock.release()
        else:
            # A worker is mid-text: killing the group ends its wait now, and it reaps the stages.
            self._signal(signal.SIGKILL)

    def _translate_locked(self, payload: bytes, timeout_s: float) -> str:
        failure: _Died | None = None
        for attempt in (1, 2):
            if self._closed:
                raise EngineUnavailable(f"apertium {self.mode} is shut down")
            if not self._procs:
                self._start()
            try:
                raw = self._exchange(payload, timeout_s)
            except _TimedOut as exc:
                self._stop(signal.SIGKILL)
                raise EngineUnavailable(f"apertium {self.mode} took over {timeout_s} s") from exc
            except _Died as exc:
                codes = self._stop(signal.SIGKILL)
                if self._closed:  # close() killed it mid-text: shutdown, not a failure
                    raise EngineUnavailable(f"apertium {self.mode} is shut down") from exc
                log.warning(
                    "apertium pipeline died",
                    extra={"mode": self.mode, "reason": str(exc), "exit_codes": codes,
                           "attempt": attempt},
                )  # fmt: skip
                failure = exc
            else:
                return reformat(raw.decode("utf-8", "replace"))
        raise EngineUnavailable(f"apertium {self.mode} died twice in a row: {failure}")

    def _start(self) -> None:
        if self._stages is None:
            self._stages, self._env = mode_pipeline(self.command, self.mode)
        procs = self._procs
        try:
            for argv in self._stages:
                upstream = procs[-1].stdout if procs else subprocess.PIPE
                procs.append(
                    subprocess.Popen(  # noqa: S603  (argv from the installed mode file, no shell)
                        argv,
                        stdin=upstream,
                        stdout=subprocess.PIPE,
                        env=self._env,
                        process_group=procs[0].pid if procs else 0,
                    )
                )
                if len(procs) > 1 and procs[-2].stdout is not None:
                    procs[-2].stdout.close()  # the next stage holds it now
        except (OSError, subprocess.SubprocessError) as exc:
            self._stop(signal.SIGKILL)
            raise EngineUnavailable(f"cannot start apertium {self.mode}: {exc}") from exc
        assert procs[0].stdin is not None
        os.set_blocking(procs[0].stdin.fileno(), False)
        log.info("apertium pipeline started", extra={"mode": self.mode, "pgid": procs[0].pid})

    def _exchange(self, payload: bytes, timeout_s: float) -> bytes:
        stdin, stdout = self._procs[0].stdin, self._procs[-1].stdout
        assert stdin is not None and stdout is not None
        in_fd, out_fd = stdin.fileno(), stdout.fileno()
        deadline = time.monotonic() + timeout_s
        todo = memoryview(payload)
        answer = bytearray()
        poller = select.poll()
        poller.register(in_fd, select.POLLOUT)
        poller.register(out_fd, select.POLLIN)
        # Write and read together: a long text's output can fill the pipes before it is all in.
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _TimedOut
            for fd, _ in poller.poll(math.ceil(left * 1000)):
                try:
                    if fd == in_fd:
                        todo = todo[os.write(in_fd, todo[:_CHUNK]) :]
                        if not todo:
                            poller.unregister(in_fd)
                        continue
                    chunk = os.read(out_fd, _CHUNK)
                except BlockingIOError:
                    continue
                except OSError as exc:  # BrokenPipeError above all
                    raise _Died(str(exc)) from exc
                if not chunk:
                    raise _Died("end of output")
                end = chunk.find(b"\0")
                if end < 0:
                    answer += chunk
                    continue
                if todo or end != len(chunk) - 1:
                    raise _Died("answer out of step with the text sent")
                return bytes(answer + chunk[:end])

    def _signal(self, sig: int) -> None:
        procs = self._procs
        # Only while a stage is unreaped: the group id cannot have been reused then.
        if procs and any(proc.poll() is None for proc in procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(procs[0].pid, sig)

    def _stop(self, sig: int, grace_s: float = 2.0) -> list[int | None]:
        """Signal the group, reap every stage (SIGKILL after ``grace_s``); their exit codes."""
        procs = self._procs
        if not procs:
            return []
        self._signal(sig)
        for pipe in (procs[0].stdin, procs[-1].stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._procs = []
        return [proc.returncode for proc in procs]
