"""Rule-based translation with the Apertium pairs installed on this machine.

By default each mode's pipeline keeps running and takes one text at a time (see
``apertium_process``); with ``apertium_persistent`` off, or where the mode's pipeline cannot be
run directly, each call runs ``apertium -u -f txt <mode>`` as a subprocess instead. Either way
the work happens in a worker thread, with a timeout that kills the whole pipeline.
``-u`` (``lt-proc -n`` in the running pipeline) drops the ``*`` on unknown words; ``#``
(generation gap) and ``@`` (no bilingual entry) marks are stripped afterwards, which also strips
a literal ``@``/``#`` glued to a word's start.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from models.errors import (
    EngineError,
    EngineUnavailable,
    InvalidInput,
    ModelMissing,
    UnsupportedLanguage,
)
from models.metrics import EngineMetrics
from models.mt.apertium_process import ApertiumProcess, NoPipeline
from models.mt.engine import LanguageSupport, recorded
from models.mt.languages import from_apertium, to_nllb, to_tag
from models.mt.settings import MtSettings
from models.pool import InferencePool

log = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install apertium apertium-eng-spa (or another apertium-X-Y pair)"
# Texts of one batch are separated by a blank line, which apertium's txt format keeps.
_SEPARATOR = "\n\n"
_MARKS = re.compile(r"(?<![\w])[*#@](?=\w)")
_SPACE = re.compile(r"\s+")


def list_modes(command: str = "apertium", timeout_s: float = 10.0) -> list[str]:
    """Translation modes apertium reports (``eng-spa``, ``spa-eng_US``...)."""
    try:
        done = subprocess.run(  # noqa: S603  (fixed argv, no shell)
            [command, "-l"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as exc:
        raise ModelMissing(f"{command} is not installed: {INSTALL_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        raise EngineUnavailable(f"{command} -l took over {timeout_s} s") from exc
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def parse_modes(modes: Sequence[str]) -> dict[tuple[str, str], str]:
    """(source, target) NLLB codes → mode name; plain modes win over variants (``_US``)."""
    pairs: dict[tuple[str, str], str] = {}
    for mode in sorted(modes, key=lambda m: ("_" in m, m)):
        parts = mode.split("-")
        if len(parts) != 2:
            continue  # debugging modes such as eng-spa-morph
        src, tgt = from_apertium(parts[0]), from_apertium(parts[1])
        if src is None or tgt is None or src == tgt:
            continue
        pairs.setdefault((src, tgt), mode)
    return pairs


def strip_marks(text: str) -> str:
    """Remove apertium's unknown-word and error marks."""
    return _MARKS.sub("", text)


class ApertiumTranslator:
    """Apertium's installed pairs, one running pipeline per mode, in its own ``InferencePool``."""

    name = "apertium"

    def __init__(
        self,
        settings: MtSettings,
        metrics: EngineMetrics | None = None,
        modes: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        found = list(modes) if modes is not None else list_modes(settings.apertium_command)
        self.pairs = parse_modes(found)
        if not self.pairs:
            raise ModelMissing(f"no apertium language pairs are installed: {INSTALL_HINT}")
        self._pool = InferencePool(
            "mt-apertium", settings.apertium_workers, settings.apertium_max_queue
        )
        self._processes: dict[str, ApertiumProcess] = {}
        self._one_shot: set[str] = set()  # modes whose pipeline cannot run persistently
        self._processes_lock = threading.Lock()
        self._closed = False
        log.info("apertium pairs", extra={"modes": sorted(self.pairs.values())})

    def _mode(self, src: str, tgt: str) -> str | None:
        try:
            return self.pairs.get((to_nllb(src), to_nllb(tgt)))
        except EngineError:
            return None

    def supports(self, src: str, tgt: str) -> bool:
        """Whether an installed mode translates ``src`` into ``tgt``."""
        return self._mode(src, tgt) is not None

    def languages(self) -> LanguageSupport:
        """Installed pairs, as tags."""
        pairs = tuple(sorted((to_tag(s), to_tag(t)) for s, t in self.pairs))
        langs = tuple(sorted({tag for pair in pairs for tag in pair}))
        return LanguageSupport(self.name, langs, pairs)

    def run_mode(self, mode: str, text: str) -> str:
        """Blocking: pipe ``text`` through ``apertium -u -f txt mode``; kills it on timeout."""
        timeout = self.settings.apertium_timeout_s
        with subprocess.Popen(  # noqa: S603  (fixed argv, no shell)
            [self.settings.apertium_command, "-u", "-f", "txt", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,  # its own process group, so a timeout kills the pipeline
        ) as proc:
            try:
                out, err = proc.communicate(text, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise EngineUnavailable(f"apertium {mode} took over {timeout} s") from exc
        if proc.returncode != 0:
            if "does not exist" in err:
                raise UnsupportedLanguage(f"apertium mode {mode} is not installed")
            raise EngineUnavailable(f"apertium {mode} exited {proc.returncode}: {err.strip()}")
        return out

    def _process(self, mode: str) -> ApertiumProcess | None:
        if not self.settings.apertium_persistent or mode in self._one_shot:
            return None
        with self._processes_lock:
            if self._closed:
                raise EngineUnavailable("apertium is shut down")
            process = self._processes.get(mode)
            if process is None:
                process = ApertiumProcess(mode, self.settings.apertium_command)
                self._processes[mode] = process
            return process

    def translate_sync(self, texts: Sequence[str], mode: str) -> list[str]:
        """Blocking batch: text by text through the mode's running pipeline, else one run."""
        # destxt drops NULs anyway; removing them first keeps them out of the NUL framing.
        clean = [_SPACE.sub(" ", text.replace("\0", "")).strip() for text in texts]
        todo = [i for i, text in enumerate(clean) if text]
        results = [""] * len(clean)
        if not todo:
            return results
        process = self._process(mode)
        parts: list[str] | None = None
        if process is not None:
            timeout = self.settings.apertium_timeout_s
            try:
                parts = [process.translate(clean[i], timeout) for i in todo]
            except NoPipeline as exc:
                # Raised before any text was sent: this mode falls back to one run per call.
                log.warning("apertium mode runs one-shot", extra={"mode": mode, "why": str(exc)})
                self._one_shot.add(mode)
        if parts is None:
            parts = self._one_shot_batch(mode, [clean[i] for i in todo])
        for i, part in zip(todo, parts, strict=True):
            results[i] = _SPACE.sub(" ", strip_marks(part)).strip()
        return results

    def _one_shot_batch(self, mode: str, texts: list[str]) -> list[str]:
        # One apertium run for all texts, split back on blank lines.
        out = self.run_mode(mode, _SEPARATOR.join(texts))
        parts = [p.strip() for p in out.strip().split(_SEPARATOR)]
        if len(parts) != len(texts):
            # Apertium merged or split a text: fall back to one run per text.
            log.warning("apertium batch misaligned", extra={"mode": mode, "texts": len(texts)})
            parts = [self.run_mode(mode, text).strip() for text in texts]
        return parts

    def _check(self, texts: Sequence[str]) -> None:
        for text in texts:
            if not isinstance(text, str):
                raise InvalidInput(f"text must be a string, not {type(text).__name__}")
            if len(text) > self.settings.apertium_max_input_chars:
                raise InvalidInput(
                    f"text is {len(text)} characters; the limit is "
                    f"{self.settings.apertium_max_input_chars} "
                    "(CALLSERVER_MT_APERTIUM_MAX_INPUT_CHARS)"
                )

    async def translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate texts of one pair in one worker-thread call."""
        with recorded(self.metrics, self.name, "translate"):
            mode = self._mode(src, tgt)
            if mode is None:
                raise UnsupportedLanguage(f"apertium has no {src}→{tgt} pair installed")
            self._check(texts)
            return await self._pool.run(self.translate_sync, list(texts), mode)

    async def translate(self, text: str, src: str, tgt: str) -> str:
        """Translate one text."""
        return (await self.translate_many([text], src, tgt))[0]

    async def warm_up(self) -> None:
        """Start every mode's pipeline now: a pipeline's first text pays 0.1-0.3 s of start-up."""
        if not self.settings.apertium_persistent:
            return
        for mode in sorted(set(self.pairs.values())):
            try:
                await self._pool.run(self.translate_sync, ["Hello."], mode)
            except EngineError as exc:
                log.warning("apertium warm-up failed", extra={"mode": mode, "error": exc.message})

    def info(self) -> dict[str, Any]:
        """Installed modes and queue, for health pages."""
        return {
            "engine": self.name,
            "modes": sorted(self.pairs.values()),
            "queue_depth": self._pool.depth,
            "pipelines": self.pipelines(),
        }

    def pipelines(self) -> dict[str, int | None]:
        """Process group id of each mode's running pipeline (None: stopped)."""
        with self._processes_lock:
            processes = dict(self._processes)
        return {mode: next(iter(p.pids), None) for mode, p in processes.items()}

    def close(self) -> None:
        """Stop the worker pool and every running pipeline."""
        self._pool.close()
        with self._processes_lock:
            self._closed = True
            processes = list(self._processes.values())
        for process in processes:
            process.close()
