"""Translation benchmark: our NLLB engine against raw CTranslate2 on the same inputs and model.

The model is a random-weight stand-in with NLLB-200-distilled-600M's exact dimensions (see
models/mt/synthetic.py), int8, with the decoding length fixed (min = max) so every sentence
costs the same whatever the weights say. Also times Apertium per sentence.

    .venv/bin/python -m bench.translate [--repeats N] [--threads 2] [--out docs/benchmarks_mt.md]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from models.mt.nllb import NllbTranslator
from models.mt.settings import MtSettings
from models.mt.synthetic import NLLB_600M, cached_model

_WORDS_TEXT = (
    "tôi bạn nhà lớn nhỏ chúng ta đi chợ hôm nay ngày mai ở đâu tại sao người thành phố nước "
    "cà phê buổi sáng gia đình công việc gọi nghe nói ngôn ngữ dịch giọng"
)
WORDS = _WORDS_TEXT.split()
ENGLISH = [
    "The house is big.",
    "We are going to the market tomorrow morning.",
    "Where is the train station?",
    "My family lives in a small city near the sea.",
    "I would like a cup of coffee, please.",
    "Can you hear me well?",
    "The meeting starts at nine o'clock.",
    "Thank you for calling, see you soon.",
]


def sentences(count: int, seed: int = 1) -> list[str]:
    """Vietnamese-looking sentences of 10-18 words (meaning is irrelevant to cost)."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choices(WORDS, k=rng.randint(10, 18))).capitalize() + "." for _ in range(count)
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="latency samples per side")
    parser.add_argument("--throughput-repeats", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=16, help="sentences per throughput run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode-len", type=int, default=32)
    parser.add_argument("--cache", type=Path, default=None, help="synthetic model cache folder")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks_mt.md"))
    args = parser.parse_args()

    t0 = time.perf_counter()
    model = cached_model(NLLB_600M, args.cache)
    build_s = time.perf_counter() - t0
    settings = MtSettings(
        model_path=model.model_dir, device="cpu", compute_type="int8", threads=args.threads,
        beam_size=1, max_decoding_length=args.decode_len, min_decoding_length=args.decode_len,
        batch_size=1, max_input_chars=10_000,
    )  # fmt: skip
    t0 = time.perf_counter()
    engine = NllbTranslator(settings)
    load_s = time.perf_counter() - t0
    raw = engine.translator  # the same loaded ctranslate2.Translator: identical weights, threads
    opts = {"beam_size": 1, "max_decoding_length": args.decode_len,
            "min_decoding_length": args.decode_len}  # fmt: skip
    texts = sentences(args.sentences)
    tokens = [engine.encode(text, "vie_Latn") for text in texts]

    def raw_batch(batch: list[list[str]]) -> None:
        results = raw.translate_batch(batch, target_prefix=[["eng_Latn"]] * len(batch), **opts)
        assert all(len(r.hypotheses[0]) == args.decode_len for r in results)

    def raw_all(batch: int) -> None:
        for k in range(0, len(tokens), batch):
            raw_batch(tokens[k : k + batch])

    loop = asyncio.new_event_loop()
    lines: list[str] = []

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    # Warm up both paths (first calls allocate caches).
    loop.run_until_complete(engine.translate(texts[0], "vi", "en"))
    raw_batch(tokens[:1])

    # --- latency per sentence, batch 1, interleaved so noise hits both sides alike -----------
    ours: list[float] = []
    base: list[float] = []
    for i in range(args.repeats):
        j = i % len(texts)
        ours.append(timed(partial(loop.run_until_complete, engine.translate(texts[j], "vi", "en"))))
        base.append(timed(partial(raw_batch, [tokens[j]])))
    report("| path | median s | p95 s |")
    report("|---|---|---|")
    report(f"| raw `translate_batch` | {statistics.median(base):.3f} | {pct(base, 0.95):.3f} |")
    report(
        f"| `NllbTranslator.translate` | {statistics.median(ours):.3f} | {pct(ours, 0.95):.3f} |"
    )
    report(
        f"| ratio ours/raw (median) | {statistics.median(ours) / statistics.median(base):.3f} | |"
    )
    report("")

    # --- throughput with batching -------------------------------------------------------------
    report(f"| batch | raw sent/s | ours sent/s | ours/raw |  ({len(texts)} sentences a run)")
    report("|---|---|---|---|")
    for batch in (1, 4, 8, 16):
        engine.settings = settings.model_copy(update={"batch_size": batch})
        ours_t: list[float] = []
        base_t: list[float] = []
        for _ in range(args.throughput_repeats):
            ours_t.append(
                timed(partial(loop.run_until_complete, engine.translate_many(texts, "vi", "en")))
            )
            base_t.append(timed(partial(raw_all, batch)))
        r_raw = len(texts) / statistics.median(base_t)
        r_ours = len(texts) / statistics.median(ours_t)
        report(f"| {batch} | {r_raw:.2f} | {r_ours:.2f} | {r_ours / r_raw:.3f} |")
    report("")
    engine.close()

    # --- Apertium -----------------------------------------------------------------------------
    if shutil.which("apertium"):
        from models.mt.apertium import ApertiumTranslator

        report("| Apertium eng-spa | median s | p95 s |")
        report("|---|---|---|")
        for persistent, label in ((False, "new apertium run a call"), (True, "running pipeline")):
            ap = ApertiumTranslator(MtSettings(apertium_persistent=persistent))
            loop.run_until_complete(ap.translate(ENGLISH[0], "en", "es"))
            samples = [timed(partial(loop.run_until_complete, ap.translate(s, "en", "es")))
                       for s in ENGLISH * 3]  # fmt: skip
            batch_s = timed(
                partial(loop.run_until_complete, ap.translate_many(ENGLISH, "en", "es"))
            )
            report(
                f"| {label}: one sentence a call | {statistics.median(samples):.4f} "
                f"| {pct(samples, 0.95):.4f} |"
            )
            report(
                f"| {label}: {len(ENGLISH)} sentences in one call, per sentence "
                f"| {batch_s / len(ENGLISH):.4f} | |"
            )
            ap.close()
    loop.close()

    header = [
        "# Translation benchmarks",
        "",
        "Command: `.venv/bin/python -m bench.translate "
        f"--repeats {args.repeats} --throughput-repeats {args.throughput_repeats} "
        f"--threads {args.threads}`",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core box "
        "(other people's tests running: expect noise). CTranslate2 int8 on CPU, "
        f"{args.threads} intra threads, greedy, decoding length fixed at {args.decode_len} tokens "
        "(min = max). Model: random weights with NLLB-200-distilled-600M's dimensions "
        f"(model.bin {(model.model_dir / 'model.bin').stat().st_size / 1e6:.0f} MB); "
        f"build or cache lookup {build_s:.1f} s, load {load_s:.1f} s. "
        "'ours' goes through the async API (sentence split, sentencepiece, pool hop, decode); "
        "'raw' is `translate_batch` on pre-tokenised input with the same Translator object.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
