"""Retrieval throughput and recall: our FaissRetriever vs raw FAISS, Qdrant local, BM25.

    python benchmarks/retrieval.py            # full run, writes docs/benchmarks.md
    python benchmarks/retrieval.py --quick --no-write

All FAISS numbers are measured on the same vectors and the same index objects in one run, with the
two sides interleaved round by round (best round kept), so their ratio is meaningful on a noisy
machine. Our retriever must reach at least 0.9x raw FAISS queries/s.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

import numpy as np
from _report import write_section  # noqa: E402

from s3_agents.embedders import HashingEmbedder  # noqa: E402
from s3_agents.retrievers import BM25Retriever, FaissRetriever, QdrantRetriever  # noqa: E402
from s3_agents.retrievers.faiss import make_faiss_index  # noqa: E402
from s3_agents.retrievers.qdrant import build_qdrant_collection, make_qdrant_client  # noqa: E402
from s3_agents.types import Passage  # noqa: E402


class FixedVectors(HashingEmbedder):
    """An 'embedder' whose passage vectors are given: the benchmark searches vectors directly."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(n: int, nq: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (like text embeddings) and queries near random data points."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(16, n // 200), dim))
    data = unit(centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, dim)))
    queries = unit(data[rng.integers(0, n, nq)] + 0.3 * rng.standard_normal((nq, dim)))
    return data, queries


def rate(fn: Callable[[], object], n_queries: int) -> float:
    start = time.perf_counter()
    fn()
    return n_queries / (time.perf_counter() - start)


def interleaved(sides: dict[str, Callable[[], object]], n_queries: int, rounds: int) -> dict[str, float]:
    best = {name: 0.0 for name in sides}
    names = list(sides)
    for round_no in range(rounds):
        # Alternate which side goes first, so warm-up and drift do not favour one of them.
        for name in names if round_no % 2 == 0 else names[::-1]:
            best[name] = max(best[name], rate(sides[name], n_queries))
    return best


def recall(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


def bm25_corpus(n: int, seed: int = 0) -> tuple[list[Passage], list[str]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    passages = [Passage(str(i), f"t{i}", " ".join(rng.choices(vocab, weights, k=60))) for i in range(n)]
    queries = [" ".join(rng.sample(p.text.split(), 4)) for p in rng.sample(passages, 200)]
    return passages, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="passages")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.rounds = 3_000, 60, 2
    k, nq = args.k, args.queries
    data, queries = make_data(args.n, nq, args.dim)
    passages = [Passage(str(i), f"title {i}", f"text {i}") for i in range(args.n)]
    emb = FixedVectors(args.dim)
    lines: list[str] = []

    # 1. Our FaissRetriever vs raw FAISS on the same flat index.
    flat = make_faiss_index(data, "flat")
    ours = FaissRetriever(flat, passages, emb)
    n_single = min(nq, 200)
    sides = {
        "raw faiss, single": lambda: [flat.search(queries[i:i + 1], k) for i in range(n_single)],
        "FaissRetriever, single": lambda: [ours.search_vectors(queries[i:i + 1], k) for i in range(n_single)],
    }
    single = interleaved(sides, n_single, args.rounds)
    sides = {
        "raw faiss, batched": lambda: flat.search(queries, k),
        "FaissRetriever, batched": lambda: ours.search_vectors(queries, k),
    }
    batched = interleaved(sides, nq, args.rounds)
    ratio_single = single["FaissRetriever, single"] / single["raw faiss, single"]
    ratio_batched = batched["FaissRetriever, batched"] / batched["raw faiss, batched"]
    ok = ratio_single >= 0.9 and ratio_batched >= 0.9

    _, truth = flat.search(queries, k)
    lines += [
        f"### FAISS wrapper overhead ({args.n:,} x {args.dim}-d vectors, top-{k}, flat inner product)",
        "",
        "| mode | raw faiss q/s | FaissRetriever q/s | ratio (need >= 0.9) |",
        "|---|---:|---:|---:|",
        f"| single query | {single['raw faiss, single']:,.0f} | {single['FaissRetriever, single']:,.0f} "
        f"| {ratio_single:.2f} |",
        f"| batch of {nq} | {batched['raw faiss, batched']:,.0f} | {batched['FaissRetriever, batched']:,.0f} "
        f"| {ratio_batched:.2f} |",
        "",
    ]

    # 2. Approximate indexes: recall@k against flat, and speed.
    rows = [f"| flat | exact | {batched['raw faiss, batched']:,.0f} | 1.000 |"]
    hnsw = make_faiss_index(data, "hnsw", hnsw_m=32)
    for ef in (32, 64, 128, 256):
        r = FaissRetriever(hnsw, passages, emb, ef_search=ef)
        found = [[int(p.id) for p in hits] for hits in r.search_vectors(queries, k)]
        qps = interleaved({"x": lambda r=r: r.search_vectors(queries, k)}, nq, args.rounds)["x"]
        rows.append(f"| hnsw (M=32) | efSearch={ef} | {qps:,.0f} | {recall(found, truth, k):.3f} |")
    ivf = make_faiss_index(data, "ivf")
    for nprobe in (1, 8, 32):
        r = FaissRetriever(ivf, passages, emb, nprobe=nprobe)
        found = [[int(p.id) for p in hits] for hits in r.search_vectors(queries, k)]
        qps = interleaved({"x": lambda r=r: r.search_vectors(queries, k)}, nq, args.rounds)["x"]
        rows.append(f"| ivf (nlist={ivf.nlist}) | nprobe={nprobe} | {qps:,.0f} | {recall(found, truth, k):.3f} |")
    lines += [f"### Approximate indexes vs flat (batched, recall@{k} against exact flat results)", "",
              "| index | setting | q/s | recall@10 |", "|---|---|---:|---:|", *rows, ""]

    # 3. Qdrant local mode on the same vectors (brute force in Python; fewer queries).
    client = make_qdrant_client()
    t0 = time.perf_counter()
    build_qdrant_collection(passages, client, "bench", emb, vectors=data, batch_size=1024, show_progress=False)
    ingest = time.perf_counter() - t0
    qdrant = QdrantRetriever(client, "bench", emb)
    nq_q = min(nq, 50)
    q_single = interleaved({"x": lambda: [qdrant.search_vectors(queries[i:i + 1], k) for i in range(nq_q)]},
                           nq_q, max(1, args.rounds // 2))["x"]
    q_batch = interleaved({"x": lambda: qdrant.search_vectors(queries[:nq_q], k)}, nq_q, max(1, args.rounds // 2))["x"]
    found = [[int(p.id) for p in hits] for hits in qdrant.search_vectors(queries[:nq_q], k)]
    q_recall = recall(found, truth[:nq_q], k)

    # 4. BM25 (bm25s) on a synthetic text corpus of the same size.
    bm_passages, bm_queries = bm25_corpus(args.n)
    t0 = time.perf_counter()
    bm25 = BM25Retriever.from_passages(bm_passages)
    bm_index = time.perf_counter() - t0
    bm_single = interleaved({"x": lambda: [bm25.search([q], k) for q in bm_queries[:100]]}, 100,
                            max(1, args.rounds // 2))["x"]
    bm_batch = interleaved({"x": lambda: bm25.search(bm_queries, k)}, len(bm_queries), max(1, args.rounds // 2))["x"]
    lines += [
        "### Other backends",
        "",
        "| backend | data | build | single q/s | batched q/s | recall@10 vs flat |",
        "|---|---|---:|---:|---:|---:|",
        f"| FAISS flat (ours) | same vectors | — | {single['FaissRetriever, single']:,.0f} | "
        f"{batched['FaissRetriever, batched']:,.0f} | 1.000 |",
        f"| Qdrant local (`:memory:`) | same vectors | {ingest:.1f} s ingest | {q_single:,.0f} | {q_batch:,.0f} "
        f"| {q_recall:.3f} |",
        f"| BM25 (bm25s) | {args.n:,} synthetic 60-word passages, 4-word queries | {bm_index:.1f} s index | "
        f"{bm_single:,.0f} | {bm_batch:,.0f} | — |",
        "",
        "Qdrant local mode is qdrant-client's pure-Python brute force (for tests and small corpora); "
        "it says nothing about a Qdrant server's speed.",
    ]
    verdict = "PASS" if ok else "FAIL"
    lines.insert(0, f"FaissRetriever reaches {min(ratio_single, ratio_batched):.2f}x raw FAISS at worst: **{verdict}** "
                    "(need >= 0.9x).\n")
    body = ("## Retrieval (`benchmarks/retrieval.py`)\n\nCommand: `python benchmarks/retrieval.py`\n\n"
            + "\n".join(lines))
    print(body)
    if not args.no_write:
        write_section("retrieval", body)
    # The 0.9x bar holds for full-size runs; --quick is a smoke run whose tiny index makes overhead dominate.
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
