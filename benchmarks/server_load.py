"""Load on the retrieval server: several concurrent clients on loopback for a bounded time.

    python benchmarks/server_load.py              # full run, writes docs/benchmarks.md
    python benchmarks/server_load.py --quick --no-write

Starts `s3 serve` on a free 127.0.0.1 port over a FAISS index of the demo corpus (real MiniLM
embedder), then for each concurrency level runs that many clients, each sending one-query
requests back to back for `--seconds`. Reports requests/s, p50/p99 latency and errors; any error
makes the script exit 1. Traffic goes to 127.0.0.1 only and every loop is bounded in time.
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
sys.path.insert(0, str(REPO))

from benchmarks._report import write_section  # noqa: E402
from benchmarks._servers import free_port, wait_healthy  # noqa: E402
from s3_agents.corpus import demo_corpus_path, load_demo_questions  # noqa: E402


def start_server(index: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "s3_agents", "serve", "--index", str(index), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_healthy(proc, f"http://127.0.0.1:{port}/health")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,4,16,32", help="concurrent clients per level")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each level")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.seconds = "1,4", 2.0
    levels = [int(x) for x in args.levels.split(",")]
    questions = [q["question"] for q in load_demo_questions()]
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "idx"
        subprocess.run([sys.executable, "-m", "s3_agents", "index", "build", str(demo_corpus_path()), str(index),
                        "--quiet"], check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        server = start_server(index, port)
        try:
            url = f"http://127.0.0.1:{port}/retrieve"
            asyncio.run(run_level(url, 2, 1.0, questions))  # warm-up
            results = [asyncio.run(run_level(url, c, args.seconds, questions)) for c in levels]
            health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        finally:
            server.terminate()
            server.wait(timeout=30)
    rows = [f"| {r['clients']} | {r['requests']:,} | {r['rps']:,.1f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['errors']} |"
            for r in results]
    total_errors = sum(r["errors"] for r in results)
    body = "\n".join([
        "## Retrieval server under load (`benchmarks/server_load.py`)",
        "",
        "Command: `python benchmarks/server_load.py`",
        "",
        f"`s3 serve` over a FAISS flat index of the demo corpus (270 passages, MiniLM query embedding on CPU), "
        f"one-query requests with `topk` 3 sent back to back by each client for {args.seconds:g} s per level, "
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
    print(body)
    if not args.no_write:
        write_section("server_load", body)
    return 0 if total_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
