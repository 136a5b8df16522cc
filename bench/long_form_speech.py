"""Long-form speech with pauses inside sentences, built from the repository's recorded clips
and the offline Piper voice, for judging where a pipeline ends utterances.

Each sentence is real speech (a narrated test clip, or Piper speaking a call-like sentence).
Pauses are inserted *inside* sentences at word boundaries that Whisper's word timestamps find
(in the middle of the quietest 30 ms near the boundary, so no word is cut), each longer than
the endpoint's default silence, so an endpointer that ends utterances on silence alone splits
the sentence there. Sentences are joined with longer gaps. Everything is 48 kHz mono s16, a
caller's format; ``to_16k`` gives what recognition takes. ``with_noise`` lays a steady noise
under it (a fan, a room), at a given ratio to the speech, so that faster-whisper's own errors
on the unsplit audio are not zero and a pipeline's can be compared with them.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import load_wav_48k, trim_silence
from models.stt.audio import Audio, pcm_audio
from models.stt.doubt import frame_power
from models.stt.score import words
from models.tts.audio import resample_to_48k
from models.tts.piper_engine import installed_voices

CLIP_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"
CLIP_STEM = "sense_and_sensibility_01_austen_64kb-"


@dataclass(frozen=True)
class SentenceSpec:
    """A sentence to say: its source (``clip:NNNN`` or text for Piper) and pauses to insert,
    as (the word after which the pause goes, seconds), in order."""

    source: str
    pauses: tuple[tuple[str, float], ...] = ()


#: Sentences with pauses inside them: the dramatic pauses of a speech, a narrator's pauses
#: before a clause, pauses after a conjunction; short card names; a one-word reply.
SENTENCES = (
    SentenceSpec(
        "And so, my fellow Americans, ask not what your country can do for you, "
        "ask what you can do for your country.",
        (("americans", 0.9), ("not", 1.0), ("you", 0.8)),
    ),
    SentenceSpec("clip:0870", (("dashwood", 0.8), ("consider", 0.9))),
    SentenceSpec("Ten of clubs."),
    SentenceSpec("clip:0880", (("not", 0.9),)),
    SentenceSpec("I think the meeting starts at nine tomorrow morning.", (("starts", 0.7),)),
    SentenceSpec("Queen of hearts."),
    SentenceSpec("clip:0890", (("and", 0.8),)),
    SentenceSpec("Could you send me the report before lunch?", (("report", 0.8),)),
    SentenceSpec("Yes."),
    SentenceSpec("Let me check my calendar and get back to you.", (("and", 0.9),)),
)
#: Long sentences spoken without a pause (6-10 s each), for streaming: a dub that waits for
#: the sentence's end starts that long after its first word.
LONG_SENTENCES = (
    SentenceSpec("clip:0870"),
    SentenceSpec(
        "Before we start the review, I would like to thank everyone who stayed late last week "
        "to finish the migration, because without your help we would have missed the deadline."
    ),
    SentenceSpec(
        "The new build runs on every commit, it takes about twelve minutes, and if a test "
        "fails the author gets a message with the log and the name of the test."
    ),
    SentenceSpec(
        "When you travel next month, please keep your receipts, write the purpose of each "
        "expense on the back, and send them to the finance team before the end of the quarter."
    ),
)
#: Silence between sentences: longer than any pause inside one.
GAP_S = 1.8
#: How far either side of a word boundary the cut may move to find the quietest point.
BOUNDARY_SEARCH_S = 0.1
#: Speech power is measured over the 20 ms frames within this many dB of the loudest one.
SPEECH_RANGE_DB = 30.0


@dataclass(frozen=True)
class Sentence:
    """One sentence of the long-form speech and where it lies in it (seconds)."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class LongForm:
    """The whole speech (48 kHz mono s16, starting and ending with silence) and its sentences."""

    audio: Pcm16
    sentences: tuple[Sentence, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


def to_16k(pcm: Pcm16) -> Audio:
    """48 kHz s16 as recognition takes it: 16 kHz float32."""
    return pcm_audio(pcm, SAMPLE_RATE)


def _quietest(pcm: Pcm16, lo: int, hi: int) -> int:
    """The middle of the quietest 30 ms in ``pcm[lo:hi]``."""
    step = 3 * SAMPLE_RATE // 100
    lo, hi = max(0, lo), min(pcm.size - step, hi)
    if hi <= lo:
        return max(0, min(pcm.size, lo))
    starts = range(lo, hi, step // 2)
    energy = [float(np.mean(pcm[s : s + step].astype(np.float64) ** 2)) for s in starts]
    return starts[int(np.argmin(energy))] + step // 2


def insert_pauses(
    pcm: Pcm16, word_times: list[tuple[str, float, float]], pauses: tuple[tuple[str, float], ...]
) -> Pcm16:
    """``pcm`` with silence inserted after the named words.

    ``word_times``: (word, start s, end s) from Whisper's word timestamps. Each pause follows
    the first word named that comes after the previous pause."""
    pieces: list[Pcm16] = []
    index = previous = 0
    for word, seconds in pauses:
        while index < len(word_times) and word not in words(word_times[index][0]):
            index += 1
        if index + 1 >= len(word_times):
            raise ValueError(f"no word boundary after {word!r}")
        end, start = word_times[index][2], word_times[index + 1][1]
        lo = int((min(end, start) - BOUNDARY_SEARCH_S) * SAMPLE_RATE)
        hi = int((max(end, start) + BOUNDARY_SEARCH_S) * SAMPLE_RATE)
        cut = _quietest(pcm, lo, hi)
        pieces += [pcm[previous:cut], np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)]
        previous = cut
        index += 1
    pieces.append(pcm[previous:])
    return np.concatenate(pieces)


async def sentence_audio(spec: SentenceSpec, piper: Any) -> tuple[str, Pcm16]:
    """(what is said, 48 kHz audio trimmed of silence) for one sentence."""
    if spec.source.startswith("clip:"):
        path = CLIP_DIR / f"{CLIP_STEM}{spec.source[5:]}.wav"
        text = path.with_suffix(".txt").read_text("utf-8").strip()
        return text, trim_silence(load_wav_48k(str(path)))
    if piper is None:
        raise ValueError("Piper is needed for sentences given as text")
    speech = await asyncio.to_thread(_speak, piper, _with_commas(spec))
    return spec.source, trim_silence(speech)


def _speak(voice: Any, text: str) -> Pcm16:
    """Piper without its random noise, so the speech is the same on every run."""
    from piper.config import SynthesisConfig

    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = [chunk.audio_int16_array for chunk in voice.synthesize(text, syn_config=quiet)]
    return resample_to_48k(np.concatenate(chunks), int(voice.config.sample_rate))


def _with_commas(spec: SentenceSpec) -> str:
    """The sentence as Piper is given it: a comma after each word a pause follows, so the
    voice ends the phrase there as a speaker who pauses would, and the cut falls in the
    short silence Piper leaves, not inside connected speech."""
    text, at = spec.source, 0
    for word, _ in spec.pauses:
        found = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE).search(text, at)
        if found is None:
            raise ValueError(f"{word!r} is not in {spec.source!r}")
        at = found.end()
        if text[at : at + 1] not in {",", ".", ";", ":", "?", "!"}:
            text = text[:at] + "," + text[at:]
    return text


def with_noise(pcm: Pcm16, snr_db: float, seed: int = 0) -> Pcm16:
    """``pcm`` with pink noise (power falling 3 dB an octave, as a fan or a room's hum) laid
    under the whole of it, ``snr_db`` below the speech's mean power. The speech's power is
    taken over its frames within ``SPEECH_RANGE_DB`` of the loudest, so pauses do not lower
    it. Seeded, so every run hears the same noise."""
    samples = pcm.astype(np.float64)
    power = frame_power(samples, SAMPLE_RATE // 50)
    speech = float(np.mean(power[power > power.max() * 10 ** (-SPEECH_RANGE_DB / 10)]))
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(samples.size))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
    noise = np.fft.irfft(spectrum, samples.size)
    noise *= np.sqrt(speech / 10 ** (snr_db / 10) / float(np.mean(np.square(noise))))
    return np.clip(np.rint(samples + noise), -32768, 32767).astype(np.int16)


async def build(
    model: Any,
    specs: tuple[SentenceSpec, ...] = SENTENCES,
    gap_s: float = GAP_S,
    snr_db: float | None = None,
) -> LongForm:
    """The long-form speech of ``specs``, ``gap_s`` of silence between sentences, with pink
    noise ``snr_db`` under the speech when given; ``model`` (a loaded faster-whisper model)
    gives the word timestamps (taken on the clean speech, so the pauses fall where they
    would without the noise)."""
    piper: Any = None
    if any(not s.source.startswith("clip:") for s in specs):
        from piper import PiperVoice

        files = installed_voices()[0]
        piper = await asyncio.to_thread(
            PiperVoice.load, str(files.model_path), str(files.config_path)
        )
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.int16)
    pieces: list[Pcm16] = [gap]
    sentences: list[Sentence] = []
    at = gap.size
    for spec in specs:
        text, pcm = await sentence_audio(spec, piper)
        timed: list[tuple[str, float, float]] = []
        if spec.pauses:
            segments, _ = model.transcribe(to_16k(pcm), language="en", word_timestamps=True)
            timed = [(w.word, w.start, w.end) for s in segments for w in s.words or ()]
        spoken = insert_pauses(pcm, timed, spec.pauses)
        sentences.append(Sentence(text, at / SAMPLE_RATE, (at + spoken.size) / SAMPLE_RATE))
        pieces += [spoken, gap]
        at += spoken.size + gap.size
    audio = np.concatenate(pieces)
    if snr_db is not None:
        audio = with_noise(audio, snr_db)
    return LongForm(audio, tuple(sentences))
