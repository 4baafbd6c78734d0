"""Retrieval at a million passages: build time, memory, disk, speed and recall of every index type.

    python benchmarks/scale.py                          # 1M x 384, every type; resumable; writes docs/benchmarks.md
    python benchmarks/scale.py --dim 768 --types flat,ivfpq-sq4,edge-int8
    python benchmarks/scale.py --quick --no-write      # 5,000 vectors, four types: a smoke run (the test)

The vectors are synthetic, generated once into the work folder. Each is a unit vector made of three parts:

- one of n/250 random cluster centres;
- a displacement in a shared 64-dimensional subspace;
- a little isotropic noise.

Text embeddings have the same traits: clustered, with most of their variance in a few directions. Uniform
random vectors have neither, and would make every compressed index look worse than it is on real data.
The queries come from the same generator. The truth is the exact top 10 by inner product.

Every type is built and queried by the library's own code paths:

- FAISS: ``new_faiss_index`` and ``fill_faiss_index``, then a memory-mapped load into ``FaissRetriever``.
  Its passages are a ``PassageFile`` read from disk, as ``s3 serve`` does.
- Qdrant Edge: ``edge_config`` and ``fill_edge_shard``, queried through ``QdrantEdgeRetriever``.

Each build runs in its own process, and so does each set of queries, so peak RSS is that step's alone.
Results are saved after each type in ``benchmarks/results/scale-<n>x<dim>.json``; a rerun skips the types
already there. Queries/s are measured one query at a time ("single") and with all queries in one call
("batched"), at each search effort (``nprobe`` for IVF, ``ef`` for HNSW), with recall@10 against exact search.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

K = 10
SUBSPACE = 64
# name -> FAISS factory ({nlist}, {m} filled in), or ("edge", quantization).
TYPES: dict[str, Any] = {
    "flat": "Flat",
    "ivf-flat": "IVF{nlist},Flat",
    "ivfpq": "IVF{nlist},PQ{m}",
    "ivfpq-rflat": "IVF{nlist},PQ{m},RFlat",
    "ivfpq-rerank": "IVF{nlist},PQ{m}",          # + the full vectors on disk, rescoring k_factor x k candidates
    "ivf-sq4": "IVF{nlist},SQ4",
    "hnsw": "HNSW16,Flat",
    "edge-hnsw": ("edge", "none"),
    "edge-int8": ("edge", "int8"),
    "opq": "OPQ{m},IVF{nlist},PQ{m}",
    "edge-pq": ("edge", "pq"),
    "edge-binary": ("edge", "binary"),
}
NPROBES = (8, 16, 32, 64, 128)
EFS = (16, 32, 64, 128, 256)
K_FACTORS = (4, 16, 64)
RERANKED = {"ivfpq-rerank"}   # FAISS types built with rerank=True (full vectors on disk)
HNSW_EF_CONSTRUCTION = 100   # the same build effort as Qdrant Edge's default ef_construct


# -- data ---------------------------------------------------------------------------------------------------

def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Generator:
    """Clustered vectors with most variance in a shared subspace (see the module docstring)."""

    def __init__(self, n: int, dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.centers = rng.standard_normal((max(16, n // 250), dim)).astype(np.float32)
        self.basis = np.linalg.qr(rng.standard_normal((dim, SUBSPACE)))[0].T.astype(np.float32)

    def draw(self, m: int, rng: np.random.Generator) -> np.ndarray:
        c = self.centers[rng.integers(0, len(self.centers), m)]
        inside = rng.standard_normal((m, SUBSPACE)).astype(np.float32) @ self.basis
        return unit(c + 1.2 * inside + 0.25 * rng.standard_normal((m, self.dim)).astype(np.float32))


def prepare(work: Path, n: int, dim: int, nq: int) -> None:
    """Write data.npy, queries.npy, truth.npy and the passage file into ``work`` (kept across runs)."""
    import faiss

    from s3_agents.retrievers._store import write_passage_file
    from s3_agents.types import Passage

    stamp = {"n": n, "dim": dim, "queries": nq, "subspace": SUBSPACE, "version": 1}
    manifest = work / "data.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == stamp:
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    gen = Generator(n, dim)
    data = np.lib.format.open_memmap(work / "data.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    rng = np.random.default_rng(1)
    for lo in range(0, n, 100_000):
        data[lo:lo + 100_000] = gen.draw(min(100_000, n - lo), rng)
    data.flush()
    queries = gen.draw(nq, np.random.default_rng(2))
    np.save(work / "queries.npy", queries)
    best_s = np.full((nq, K), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, K), dtype=np.int64)
    for lo in range(0, n, 100_000):
        flat = faiss.IndexFlatIP(dim)
        flat.add(np.ascontiguousarray(data[lo:lo + 100_000]))
        s, i = flat.search(queries, K)
        s_all, i_all = np.concatenate([best_s, s], 1), np.concatenate([best_i, i + lo], 1)
        order = np.argsort(-s_all, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(s_all, order, 1), np.take_along_axis(i_all, order, 1)
    np.save(work / "truth.npy", best_i)
    write_passage_file((Passage(str(i), f"Passage {i}", f"Synthetic passage number {i}.") for i in range(n)),
                       work / "passages.jsonl")
    manifest.write_text(json.dumps(stamp))


# -- one step in its own process ----------------------------------------------------------------------------

def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files) / 2**20   # allocated, not apparent (WAL files are sparse)


def factory_of(name: str, n: int, dim: int) -> str:
    from s3_agents.retrievers.faiss import default_nlist, default_pq_m

    return TYPES[name].format(nlist=default_nlist(n), m=default_pq_m(dim))


def child_build(name: str, work: Path) -> dict[str, Any]:
    data = np.load(work / "data.npy", mmap_mode="r")
    n, dim = data.shape
    blocks = (data[lo:lo + 65_536] for lo in range(0, n, 65_536))
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    start = time.perf_counter()
    if isinstance(TYPES[name], tuple):
        from qdrant_edge import EdgeShard

        from s3_agents.retrievers._store import PassageFile
        from s3_agents.retrievers.qdrant_edge import edge_config, fill_edge_shard

        shard = EdgeShard.create(str(out / "shard"), edge_config(dim, quantization=TYPES[name][1]))
        fill_edge_shard(shard, PassageFile(work / "passages.jsonl"), blocks, show_progress=False)
        shard.close()
        factory = f"qdrant-edge m=16 ef_construct=100 quantization={TYPES[name][1]}"
    else:
        import faiss

        from s3_agents.retrievers.faiss import fill_faiss_index, new_faiss_index

        factory = factory_of(name, n, dim)
        index = new_faiss_index(factory, dim, ef_construction=HNSW_EF_CONSTRUCTION)
        rng = np.random.default_rng(3)
        fill_faiss_index(index, blocks, n=n,
                         sample=lambda size: np.ascontiguousarray(data[np.sort(rng.choice(n, size, replace=False))]))
        faiss.write_index(index, str(out / "index.faiss"))
        if name in RERANKED:
            from s3_agents.retrievers.faiss import write_disk_vectors

            write_disk_vectors((data[lo:lo + 65_536] for lo in range(0, n, 65_536)), out / "vectors.f32")
    return {"factory": factory, "build_s": time.perf_counter() - start, "build_peak_mb": rss_mb("VmHWM"),
            "disk_mb": disk_mb(out)}


def child_query(name: str, work: Path, single: int) -> dict[str, Any]:
    from s3_agents.embedders import HashingEmbedder
    from s3_agents.retrievers._store import PassageFile

    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    dim = queries.shape[1]
    if isinstance(TYPES[name], tuple):
        from s3_agents.retrievers.qdrant_edge import QdrantEdgeRetriever, open_edge_shard

        base = rss_mb()
        retriever: Any = QdrantEdgeRetriever(open_edge_shard(work / name / "shard"), HashingEmbedder(dim))
        efforts: list[dict[str, int]] = [{"ef_search": ef} for ef in EFS]
    else:
        import faiss

        from s3_agents.retrievers.faiss import DiskVectors, FaissRetriever

        base = rss_mb()
        index = faiss.read_index(str(work / name / "index.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        rerank = DiskVectors(work / name / "vectors.f32", dim) if name in RERANKED else None
        retriever = FaissRetriever(index, PassageFile(work / "passages.jsonl"), HashingEmbedder(dim), rerank=rerank)
        kind = retriever.index_type
        efforts = ([{"nprobe": p} for p in NPROBES] if kind == "ivf" else
                   [{"ef_search": ef} for ef in EFS] if kind == "hnsw" else [{}])
        if isinstance(faiss.downcast_index(index), faiss.IndexRefine) or rerank is not None:
            efforts = [{"nprobe": p, "k_factor": k} for p in (8, 16, 32) for k in K_FACTORS]
    loaded = rss_mb()
    retriever.search_vectors(queries, K)          # fault the index's pages in once, so the first setting is fair
    rows = []
    for effort in efforts:
        retriever.tune(**effort)
        retriever.search_vectors(queries[:50], K)                           # warm up
        start = time.perf_counter()
        hits = retriever.search_vectors(queries, K)
        batched = len(queries) / (time.perf_counter() - start)
        start = time.perf_counter()
        for q in queries[:single]:
            retriever.search_vectors(q[None, :], K)
        one = single / (time.perf_counter() - start)
        found = [{int(p.id) for p in row} for row in hits]
        recall = float(np.mean([len(f & set(t.tolist())) / K for f, t in zip(found, truth)]))
        rows.append({"effort": effort, "batched_qps": batched, "single_qps": one, "recall": recall})
    # Resident memory splits into private (RssAnon: heap, the index read into RAM) and file pages (RssFile: the
    # memory-mapped index and passages, which the OS shares between processes and can drop and read again).
    memory = {"base_mb": base, "loaded_mb": loaded, "peak_mb": rss_mb("VmHWM"), "anon_mb": rss_mb("RssAnon"),
              "file_mb": rss_mb("RssFile")}
    retriever.close()
    return {"rows": rows, **memory}


def run_child(step: str, name: str, work: Path, single: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", step, "--type", name, "--work", str(work), "--single", str(single)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{step} {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(name: str, work: Path, out: Path) -> None:
    """An index directory over a kept FAISS index and the synthetic passages, for `s3 serve` at this scale."""
    import faiss

    from s3_agents.retrievers._store import FORMAT_VERSION, META_FILE, OFFSETS_FILE, PASSAGES_FILE, IndexStore
    from s3_agents.retrievers.faiss import _ivf

    source = work / name / "index.faiss"
    if isinstance(TYPES.get(name), tuple) or not source.is_file():
        raise SystemExit(f"no kept FAISS index {name!r} in {work} (run with --keep first)")
    index = faiss.read_index(str(source), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    ivf = _ivf(index)
    meta = {"format_version": FORMAT_VERSION, "count": int(index.ntotal), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "kind": "faiss", "index_type": "factory", "factory": factory_of(name, int(index.ntotal), index.d),
            "embedder": "minilm", "dim": index.d, **({"nlist": int(ivf.nlist), "nprobe": 16} if ivf else {})}
    files = [(source, "index.faiss"), (work / "passages.jsonl", PASSAGES_FILE), (work / OFFSETS_FILE, OFFSETS_FILE)]
    if name in RERANKED:
        meta["rerank"] = {"file": "vectors.f32", "k_factor": 16}
        files.append((work / name / "vectors.f32", "vectors.f32"))
    with IndexStore(out).new_generation() as gen:
        for src, dst in files:
            try:
                os.link(src, gen / dst)                  # the same disk: no copy of 1.5 GB
            except OSError:
                shutil.copyfile(src, gen / dst)
        (gen / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({name}, {index.ntotal:,} vectors)")


# -- report -------------------------------------------------------------------------------------------------

def best_at(rows: list[dict[str, Any]], recall: float) -> dict[str, Any] | None:
    """The fastest batched setting reaching ``recall``."""
    ok = [r for r in rows if r["recall"] >= recall]
    return max(ok, key=lambda r: r["batched_qps"]) if ok else None


def effort_text(effort: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in effort.items()) or "exact"


def report(results: dict[str, Any], n: int, dim: int, command: str) -> str:
    bases = sorted({round(res["query"]["base_mb"]) for res in results.values()})
    base_text = f"{bases[0]}" if len(bases) == 1 else f"{bases[0]} to {bases[-1]}"
    lines = [
        f"## Retrieval at {n:,} x {dim} (`benchmarks/scale.py`, synthetic clustered vectors)", "",
        f"Command: `{command}`. Peak RSS is the whole process (Python, numpy, FAISS / Qdrant Edge included; "
        f"one that has imported them holds {base_text} MB). 'Serving' is the process that opened the index "
        "(memory-mapped where the engine allows it) and ran every query; its resident memory after the "
        "queries splits into private memory and file pages (memory-mapped index files and passages, shared "
        "between processes and dropped by the OS under pressure). Reranking reads full vectors with `pread`, "
        "so they sit in the OS page cache and appear in neither. A build's peak includes the 1.5 GB of input "
        "vectors read through a memory map.", "",
        "| type | built as | build | build peak RSS | disk | serving peak RSS | serving private + file pages |"
        " setting | recall@10 | batched q/s | single q/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for i, row in enumerate(res["query"]["rows"]):
            head = (f"| {name} | `{res['build']['factory']}` | {res['build']['build_s']:.0f} s | "
                    f"{res['build']['build_peak_mb']:.0f} MB | {res['build']['disk_mb']:.0f} MB | "
                    f"{res['query']['peak_mb']:.0f} MB | {res['query'].get('anon_mb', float('nan')):.0f} + "
                    f"{res['query'].get('file_mb', float('nan')):.0f} MB" if i == 0 else "| | | | | | |")
            lines.append(f"{head} | {effort_text(row['effort'])} | {row['recall']:.3f} | {row['batched_qps']:,.0f} | "
                         f"{row['single_qps']:,.0f} |")
    lines += ["", "Goals on this 2-core machine:", ""]
    compressed = {name: res for name, res in results.items()
                  if name not in ("flat", "ivf-flat", "hnsw", "edge-hnsw")}
    met = []
    for name, res in compressed.items():
        row = best_at(res["query"]["rows"], 0.9)
        if row and row["batched_qps"] >= 1000 and res["query"]["peak_mb"] < 300:
            met.append(f"{name} ({effort_text(row['effort'])}: recall {row['recall']:.3f}, "
                       f"{row['batched_qps']:,.0f} q/s, {res['query']['peak_mb']:.0f} MB)")
    near = []
    for name, res in compressed.items():
        row = best_at([r for r in res["query"]["rows"] if r["batched_qps"] >= 1000], 0.9)
        if row and res["query"]["peak_mb"] >= 300:
            near.append(f"{name} reaches recall {row['recall']:.3f} at {row['batched_qps']:,.0f} q/s "
                        f"({effort_text(row['effort'])}) with a peak of {res['query']['peak_mb']:.0f} MB "
                        f"({res['query']['peak_mb'] - res['query']['base_mb']:.0f} MB above the "
                        f"{res['query']['base_mb']:.0f} MB of the process before it opened the index)")
    lines.append("- A compressed index at recall@10 >= 0.9, >= 1,000 batched q/s, < 300 MB: "
                 + ("**met** by " + "; ".join(met) if met else
                    "**not met**" + (": closest, " + "; ".join(near) if near else " (see the table)")) + ".")
    if "hnsw" in results and "edge-hnsw" in results:
        faiss_rows, edge_rows = results["hnsw"]["query"]["rows"], results["edge-hnsw"]["query"]["rows"]
        target = min(max(r["recall"] for r in faiss_rows), max(r["recall"] for r in edge_rows), 0.95)
        faiss_best, edge_best = best_at(faiss_rows, target), best_at(edge_rows, target)
        ratio = edge_best["batched_qps"] / faiss_best["batched_qps"]
        lines.append(
            f"- Qdrant Edge HNSW vs FAISS HNSW (both m=16, ef_construct=100), the fastest setting of each reaching "
            f"recall@10 {target:.3f}: {edge_best['batched_qps']:,.0f} q/s ({effort_text(edge_best['effort'])}) vs "
            f"{faiss_best['batched_qps']:,.0f} q/s ({effort_text(faiss_best['effort'])}) = **{ratio:.2f}x** "
            f"({'met' if ratio >= 0.8 else 'not met'}: goal 0.8x).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="passages (vectors)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="queries, batched in one call")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated, from: " + ", ".join(TYPES))
    parser.add_argument("--work", type=Path, default=None, help="data and indexes (default ~/.cache/s3-agents/...)")
    parser.add_argument("--redo", action="store_true", help="measure again the types already saved")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep each built index in the work folder")
    parser.add_argument("--requery", action="store_true",
                        help="measure the queries again on the indexes kept by an earlier --keep run (no rebuild)")
    parser.add_argument("--quick", action="store_true", help="5,000 vectors, 100 queries, four types, a temporary "
                        "work folder: a smoke run")
    parser.add_argument("--export", nargs=2, metavar=("TYPE", "DIR"),
                        help="write the kept FAISS index TYPE as an index directory DIR that `s3 serve --index` opens "
                             "(queries embedded by MiniLM, 384-d), then stop")
    parser.add_argument("--child", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--type", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.single, args.types = 5000, 100, 20, "flat,ivfpq-rflat,hnsw,edge-hnsw"
        args.work = args.work or Path(tempfile.mkdtemp(prefix="s3-scale-"))
    work = args.work or Path.home() / ".cache" / "s3-agents" / f"scale-{args.n}x{args.dim}"
    if args.child:
        result = child_build(args.type, work) if args.child == "build" else child_query(args.type, work, args.single)
        print(json.dumps(result))
        return
    if args.export:
        export(args.export[0], work, Path(args.export[1]))
        return
    names = [t.strip() for t in args.types.split(",") if t.strip()]
    unknown = sorted(set(names) - set(TYPES))
    if unknown:
        parser.error(f"unknown --types {', '.join(unknown)}; choose from {', '.join(TYPES)}")
    saved = ROOT / "benchmarks" / "results" / f"scale-{args.n}x{args.dim}.json"
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() and not args.no_write else {}
    print(f"preparing {args.n:,} x {args.dim} vectors in {work}", flush=True)
    prepare(work, args.n, args.dim, args.queries)
    for name in names:
        kept = (work / name).is_dir() and name in results
        if name in results and not args.redo and not (args.requery and kept):
            print(f"{name}: saved already", flush=True)
            continue
        if args.requery and kept:
            built = results[name]["build"]
        else:
            built = run_child("build", name, work, args.single)
        print(f"{name}: built in {built['build_s']:.0f} s, peak {built['build_peak_mb']:.0f} MB, "
              f"{built['disk_mb']:.0f} MB on disk", flush=True)
        queried = run_child("query", name, work, args.single)
        for row in queried["rows"]:
            print(f"  {effort_text(row['effort']):14s} recall {row['recall']:.3f}  "
                  f"batched {row['batched_qps']:8,.0f} q/s  single {row['single_qps']:7,.0f} q/s", flush=True)
        results[name] = {"build": built, "query": queried}
        if not (args.keep or args.requery):
            shutil.rmtree(work / name, ignore_errors=True)
        if not args.no_write:
            saved.parent.mkdir(parents=True, exist_ok=True)
            from s3_agents.locks import write_atomic

            write_atomic(saved, json.dumps(results, indent=1).encode())
    command = "python benchmarks/scale.py" + ("" if (args.n, args.dim) == (1_000_000, 384) else
                                              f" --n {args.n} --dim {args.dim}")
    text = report({k: results[k] for k in TYPES if k in results}, args.n, args.dim, command)
    print(text)
    if args.quick:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_write:
        from _report import write_section

        write_section(f"scale-{args.n}x{args.dim}", text)


if __name__ == "__main__":
    main()
