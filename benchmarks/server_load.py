"""Load on the retrieval server: several concurrent clients on loopback for a bounded time.

    python benchmarks/server_load.py              # both runs, writes docs/benchmarks.md
    python benchmarks/server_load.py --only fairness
    python benchmarks/server_load.py --quick --no-write

Starts `s3 serve` on a free 127.0.0.1 port over a FAISS index of the demo corpus (real MiniLM
embedder). Two runs:

- levels: for each concurrency level, that many clients each send one-query requests back to
  back for `--seconds`; requests/s, p50/p99 latency and errors (any error makes the script exit 1).
- fairness: one client sends one-query requests back to back, first alone, then while a hostile
  client sends large requests back to back, one hostile shape after another: the most query
  characters a request may carry (queries of 1,900 characters), and the most queries (512, empty or
  of 7 characters), each with `topk` at its maximum. The goal: the small client's p99 under load
  stays at most 5x its p99 alone, for every shape. Measured on the default server (index calls
  bounded by their cost: queries, characters with a floor per query, passages returned) and, side by
  side, on one bounded by queries and characters only (no passage budget, no floor), as before.
  `--embedder hashing` serves a hashing-embedder index instead of MiniLM.

Traffic goes to 127.0.0.1 only and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent

from _report import write_section  # noqa: E402

from s3_agents.corpus import load_demo_corpus  # noqa: E402
from s3_agents.embedders import load_embedder  # noqa: E402
from s3_agents.processes import free_port, wait_healthy  # noqa: E402
from s3_agents.qa import load_demo_qa  # noqa: E402
from s3_agents.retrievers import build_index  # noqa: E402


def start_server(index: Path, port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "s3_agents", "serve", "--index", str(index), "--port", str(port),
                             "--log-level", "warning", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(proc, f"http://127.0.0.1:{port}/health")
    return proc


async def run_level(url: str, clients: int, seconds: float, questions: list[str]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        async with httpx.AsyncClient(timeout=30) as http:
            while time.monotonic() < stop_at:
                body = {"queries": [rng.choice(questions)], "topk": 3, "return_scores": True}
                t0 = time.perf_counter()
                try:
                    reply = await http.post(url, json=body)
                    ok = reply.status_code == 200 and len(reply.json()["result"][0]) == 3
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

    start = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - start
    lat = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "errors": errors}


async def small_client(url: str, stop_at: float, questions: list[str], latencies: list[float]) -> int:
    """One-query requests back to back until ``stop_at``; appends latencies, returns the error count."""
    errors = 0
    rng = random.Random(0)
    async with httpx.AsyncClient(timeout=120) as http:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                reply = await http.post(url, json={"queries": [rng.choice(questions)], "topk": 3})
                ok = reply.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok
    return errors


async def hostile_client(url: str, stop_at: float, body: dict, seconds: list[float]) -> int:
    """Maximum-size requests back to back until ``stop_at``; returns the error count."""
    errors = 0
    async with httpx.AsyncClient(timeout=300) as http:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            reply = await http.post(url, json=body)
            seconds.append(time.perf_counter() - t0)
            errors += reply.status_code != 200
    return errors


async def fairness(url: str, seconds: float, questions: list[str], hostiles: dict[str, dict]
                   ) -> dict[str, dict[str, float]]:
    """The small client alone, then under each hostile shape in turn: one result row per shape."""
    alone: list[float] = []
    alone_errors = await small_client(url, time.monotonic() + seconds, questions, alone)
    p99_alone = float(np.percentile(np.array(alone) * 1000, 99))
    results = {}
    for name, big in hostiles.items():
        mixed: list[float] = []
        big_seconds: list[float] = []
        stop_at = time.monotonic() + seconds
        hostile = asyncio.ensure_future(hostile_client(url, stop_at, big, big_seconds))
        await asyncio.sleep(0.5)  # the first large request is in
        errors = await small_client(url, stop_at, questions, mixed)
        big_errors = await hostile
        p99_mixed = float(np.percentile(np.array(mixed) * 1000, 99))
        results[name] = {"alone_n": len(alone), "alone_p50": float(np.median(alone)) * 1000, "alone_p99": p99_alone,
                         "mixed_n": len(mixed), "mixed_p50": float(np.median(mixed)) * 1000, "mixed_p99": p99_mixed,
                         "ratio": p99_mixed / p99_alone, "big_n": len(big_seconds),
                         "big_s": float(np.mean(big_seconds)) if big_seconds else float("nan"),
                         "errors": alone_errors + errors + big_errors}
    return results


def hostile_body(limits_chars: int = 100_000, query_chars: int = 1_900, topk: int = 100) -> dict:
    """The largest request the default limits allow in characters: queries of ``query_chars`` up to the cap."""
    text = " ".join(p.contents for p in load_demo_corpus().passages)
    queries = [text[i * 97:i * 97 + query_chars] for i in range(limits_chars // query_chars)]
    return {"queries": queries, "topk": topk}


def hostile_bodies(max_queries: int = 512, topk: int = 100) -> dict[str, dict]:
    """Each hostile shape: the most characters, and the most queries (empty, then 7 characters each)."""
    words = " ".join(p.contents for p in load_demo_corpus().passages).split()
    return {
        "52 queries of 1,900 characters": hostile_body(topk=topk),
        f"{max_queries} empty queries": {"queries": [""] * max_queries, "topk": topk},
        f"{max_queries} queries of 7 characters": {"queries": [(w + " " * 7)[:7] for w in words[:max_queries]],
                                                   "topk": topk},
    }


FAIRNESS_SERVERS = {
    "cost-bounded (defaults)": (),
    "queries and characters only": ("--max-batch-passages", "1000000", "--min-query-cost", "1"),
}


def run_fairness(index: Path, seconds: float, *, compare: bool = True, embedder: str = "minilm") -> tuple[str, bool]:
    questions = [q.question for q in load_demo_qa()]
    hostiles = hostile_bodies()
    if not compare:
        hostiles = dict(list(hostiles.items())[:2])
    results = {}
    for name, extra in list(FAIRNESS_SERVERS.items())[:None if compare else 1]:
        port = free_port()
        server = start_server(index, port, *extra)
        try:
            url = f"http://127.0.0.1:{port}/retrieve"
            asyncio.run(run_level(url, 1, 1.0, questions))  # warm-up
            results[name] = asyncio.run(fairness(url, seconds, questions, hostiles))
        finally:
            server.terminate()
            server.wait(timeout=30)
    rows = [f"| {name} | {shape} | {r['alone_p50']:.1f} | {r['alone_p99']:.1f} | {r['mixed_p50']:.1f} "
            f"| {r['mixed_p99']:.1f} | **{r['ratio']:.1f}x** | {r['mixed_n']:,} | {r['big_n']} | {r['big_s']:.2f} "
            f"| {r['errors']} |"
            for name, by_shape in results.items() for shape, r in by_shape.items()]
    bounded = results["cost-bounded (defaults)"]
    worst = max(r["ratio"] for r in bounded.values())
    met = worst <= 5
    model = "MiniLM" if embedder == "minilm" else "the hashing embedder"
    command = "python benchmarks/server_load.py --only fairness" + ("" if embedder == "minilm" else
                                                                    f" --embedder {embedder}")
    body = "\n".join([
        f"## Fairness under a hostile client, {model} (`benchmarks/server_load.py --only fairness`)",
        "",
        f"Command: `{command} --seconds {seconds:g}`",
        "",
        f"`s3 serve` over a FAISS flat index of the demo corpus ({model} on CPU). One client sends one-query "
        f"requests (`topk` 3) back to back for {seconds:g} s alone, then for {seconds:g} s under each hostile "
        "client in turn, which sends its requests back to back: the most query characters a request may carry "
        "(52 queries of 1,900 characters), and the most queries (512 empty ones, 512 of 7 characters), all with "
        "`topk` 100. Same machine, same run; the second server differs only in its cost budget (no passage "
        "budget, no per-query floor: how the server sliced before).",
        "",
        "| server | hostile | alone p50 ms | alone p99 ms | under load p50 ms | under load p99 ms | p99 ratio "
        "| small requests under load | large requests | s per large request | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Goal: p99 under load at most 5x p99 alone, for every hostile shape. Cost-bounded, the worst shape: "
        f"**{worst:.1f}x, {'met' if met else 'not met'}**.",
        "",
        "Reading: the budgets cut a request of many short queries into small calls; a query of 1,900 characters "
        "is already one call of its own, so its row is what one long query costs beside a short one (the "
        "embedder truncates it to its token limit), and no budget makes it smaller.",
    ])
    return body, all(r["errors"] == 0 for by_shape in results.values() for r in by_shape.values())


def run_levels(index: Path, levels: list[int], seconds: float, *, label: Path | None = None) -> tuple[str, bool]:
    questions = [q.question for q in load_demo_qa()]
    port = free_port()
    server = start_server(index, port)
    try:
        url = f"http://127.0.0.1:{port}/retrieve"
        asyncio.run(run_level(url, 2, 1.0, questions))  # warm-up
        results = [asyncio.run(run_level(url, c, seconds, questions)) for c in levels]
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    if label is not None:
        from s3_agents.retrievers._store import IndexStore

        meta = IndexStore(label).read_meta()
        rerank = (f", candidates reranked from the full vectors on disk (k_factor {meta['rerank']['k_factor']})"
                  if meta.get("rerank") else "")
        what = (f"`s3 serve` over `{label.name}`: a FAISS `{meta.get('factory')}` index of {meta['count']:,} synthetic "
                f"384-d vectors (nprobe {meta.get('nprobe', '-')}{rerank}; from `benchmarks/scale.py --export`), "
                "passages read from disk by offset, MiniLM query embedding on CPU")
        heading = f"## Retrieval server at {meta['count']:,} passages (`benchmarks/server_load.py --index`)"
        command = f"python benchmarks/server_load.py --index {label}"
    else:
        what = "`s3 serve` over a FAISS flat index of the demo corpus (270 passages, MiniLM query embedding on CPU)"
        heading = "## Retrieval server under load (`benchmarks/server_load.py`)"
        command = "python benchmarks/server_load.py --only levels"
    rows = [f"| {r['clients']} | {r['requests']:,} | {r['rps']:,.1f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['errors']} |"
            for r in results]
    total_errors = sum(r["errors"] for r in results)
    body = "\n".join([
        heading,
        "",
        f"Command: `{command}`",
        "",
        f"{what}, "
        f"one-query requests with `topk` 3 sent back to back by each client for {seconds:g} s per level, "
        "on 127.0.0.1; client and server share the machine's cores.",
        "",
        "| clients | requests | requests/s | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Errors in total: **{total_errors}** (must be 0). Concurrent requests share index calls: the server "
        f"answered {health['queries_served']:,} queries in {health['batches']:,} batched index calls "
        f"({health['queries_served'] / max(1, health['batches']):.1f} queries per call on average).",
    ])
    return body, total_errors == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["levels", "fairness"], help="run one of the two")
    parser.add_argument("--levels", default="1,4,16,32", help="concurrent clients per level")
    parser.add_argument("--seconds", type=float, default=None, help="duration of each level / fairness phase "
                                                                     "(default 10 / 30)")
    parser.add_argument("--index", type=Path, help="serve this index directory instead of the demo corpus's "
                        "(levels only), e.g. the 1M-vector one from `benchmarks/scale.py --export`")
    parser.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm",
                        help="the demo index's embedder (fairness and levels)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.embedder != "minilm" and args.only != "fairness":
        parser.error("--embedder hashing goes with --only fairness")
    if args.quick:
        args.levels, args.seconds = "1,4", 1.0
    ok = True
    if args.index:
        body, ok = run_levels(args.index, [int(x) for x in args.levels.split(",")], args.seconds or 10.0,
                              label=args.index)
        print(body)
        if not args.no_write:
            write_section("server_load_scale", body)
        return 0 if ok else 1
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "idx"
        build_index(load_demo_corpus().passages, index, embedder=load_embedder(args.embedder), show_progress=False)
        runs = {"levels": lambda: run_levels(index, [int(x) for x in args.levels.split(",")], args.seconds or 10.0),
                "fairness": lambda: run_fairness(index, args.seconds or 20.0, compare=not args.quick,
                                                 embedder=args.embedder)}
        for name, run in runs.items():
            if args.only in (None, name):
                body, passed = run()
                ok = ok and passed
                print(body + "\n")
                if not args.no_write:
                    section = ("server_load" if name == "levels" else "server_fairness" if args.embedder == "minilm"
                               else f"server_fairness_{args.embedder}")
                    write_section(section, body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
