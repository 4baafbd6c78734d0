"""Index-build embedding speed: ``s3 index build`` against raw ``SentenceTransformer.encode`` on the same texts.

    python benchmarks/embed.py                 # writes docs/benchmarks.md
    python benchmarks/embed.py --quick --no-write

The texts are the demo corpus and the benchmark world's passages (2,270 passages of 10 to 120 words), embedded
with the offline MiniLM. Each round times, one after the other on the same texts:

- **raw**: ``SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)``, the ceiling. It
  sorts all texts by length before batching.
- **build**: a complete flat ``build_faiss_index`` into a fresh directory. It embeds chunk by chunk (saved for
  resume), adds each chunk to the index in a writer thread, and publishes the generation atomically.
- **unsorted batches**: batches of 64 in corpus order, as the embedder did before it sorted by length.

The best of the rounds is kept for each, so the ratios are measured side by side on a noisy machine. The goal
is build >= 0.9x raw.

A second table runs raw encoding with another process hammering torch on every core, at the default thread
count and at one thread. This shows what oversubscription costs and what ``threads=`` buys back.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import write_section  # noqa: E402

from s3_agents.corpus import load_demo_corpus  # noqa: E402
from s3_agents.embedders import SentenceTransformerEmbedder  # noqa: E402
from s3_agents.retrievers.faiss import build_faiss_index  # noqa: E402
from s3_agents.worlds import default_world_dir, load_world  # noqa: E402


def busy(stop: multiprocessing.synchronize.Event) -> None:
    """Other torch work on every core: the situation in which a build used to crawl."""
    import torch

    a = torch.randn(512, 512)
    while not stop.is_set():
        a = torch.tanh(a @ a.T / 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128 texts, 1 round: a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()
    passages = load_demo_corpus().passages + load_world(default_world_dir()).passages
    rounds = args.rounds
    if args.quick:
        passages, rounds = passages[:128], 1
    texts = [p.contents for p in passages]
    words = [len(t.split()) for t in texts]
    embedder = SentenceTransformerEmbedder.default()
    model = embedder._model
    model.encode(texts[:64], batch_size=64)                                        # warm up
    work = Path(tempfile.mkdtemp(prefix="s3-embed-bench-"))

    def raw() -> None:
        model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    def build() -> None:
        build_faiss_index(passages, work / "idx", embedder=embedder, restart=True, show_progress=False)

    def unsorted() -> None:
        np.concatenate([model.encode(texts[i:i + 64], batch_size=64, normalize_embeddings=True,
                                     show_progress_bar=False) for i in range(0, len(texts), 64)])

    sides = {"raw SentenceTransformer.encode": raw, "s3 index build (flat, resumable, atomic)": build,
             "unsorted batches of 64 (the embedder before)": unsorted}
    best = dict.fromkeys(sides, 0.0)
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            best[name] = max(best[name], len(texts) / (time.perf_counter() - start))
    shutil.rmtree(work, ignore_errors=True)

    import torch

    contended = {}
    stop = multiprocessing.get_context("spawn").Event()
    other = multiprocessing.get_context("spawn").Process(target=busy, args=(stop,), daemon=True)
    other.start()
    time.sleep(3)
    default_threads = torch.get_num_threads()
    sample = texts[: max(64, len(texts) // 4)]
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        model.encode(sample, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        contended[threads] = len(sample) / (time.perf_counter() - start)
    torch.set_num_threads(default_threads)
    stop.set()
    other.join(timeout=10)

    raw_rate = best["raw SentenceTransformer.encode"]
    ratio = best["s3 index build (flat, resumable, atomic)"] / raw_rate
    lines = [
        f"## Index-build embedding speed (`benchmarks/embed.py`): {len(texts):,} passages of {min(words)}-{max(words)} "
        "words, MiniLM on CPU",
        "", "Command: `python benchmarks/embed.py`. Best of "
        f"{rounds} interleaved rounds.", "",
        "| path | passages/s | vs raw |", "|---|---|---|",
    ]
    lines += [f"| {name} | {rate:,.1f} | {rate / raw_rate:.2f}x |" for name, rate in best.items()]
    lines += ["", f"Goal: build >= 0.9x raw encode: **{'met' if ratio >= 0.9 else 'not met'}** ({ratio:.2f}x).", "",
              f"With another process running torch on every core ({len(sample)} passages, raw encode):", "",
              "| embedder threads | passages/s |", "|---|---|"]
    lines += [f"| {t}{' (torch default)' if t == default_threads else ''} | {r:,.1f} |" for t, r in contended.items()]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("embed", text)


if __name__ == "__main__":
    main()
