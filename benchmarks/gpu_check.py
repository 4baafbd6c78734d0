"""GPU check of the index-build paths: the embedder on CUDA (fp16 and fp32) and FAISS on GPU.

Run on a GPU machine that has torch, transformers and sentence-transformers but not this project's other
dependencies (the project's device machines), from the repository root:

    python3 benchmarks/gpu_check.py --minilm DIR [--wheels DIR] [--out FILE]

``--minilm`` is an all-MiniLM-L6-v2 folder. Without its ``model.safetensors``, the weights are drawn at
random: the same architecture, so the same speed, with vectors that mean nothing. ``--wheels`` holds wheels
installed into a private folder first, e.g. faiss-gpu. The library's modules are imported without the
package's ``__init__`` (which needs LangGraph and the rest), so what runs is this project's own embedder and
FAISS retriever code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def import_library() -> None:
    """Make ``s3_agents`` importable module by module, skipping the package ``__init__`` files."""
    for name, folder in (("s3_agents", "s3_agents"), ("s3_agents.retrievers", "s3_agents/retrievers")):
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT / folder)]
        sys.modules[name] = package


def embedder_check(minilm: Path, texts: list[str]) -> dict[str, Any]:
    import numpy as np
    import torch

    if not (minilm / "model.safetensors").exists():
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        BertModel(BertConfig.from_pretrained(minilm)).save_pretrained(minilm)
    from s3_agents.embedders import SentenceTransformerEmbedder

    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "texts": len(texts)}
    vectors = {}
    embedders = {(device, precision): SentenceTransformerEmbedder(str(minilm), device=device, precision=precision,
                                                                   batch_size=256)
                 for device, precision in (("cuda", "auto"), ("cuda", "fp32"), ("cpu", "fp32"))}
    for _ in range(3):                             # interleaved rounds, best kept: the first pays for kernel setup
        for (device, _), emb in embedders.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            vectors[(device, emb.precision)] = emb.embed_passages(texts)
            if device == "cuda":
                torch.cuda.synchronize()
            key = f"{device}-{emb.precision}-passages-per-s"
            out[key] = max(out.get(key, 0.0), len(texts) / (time.perf_counter() - start))
            out[f"{device}-{emb.precision}-resolved"] = f"{emb.device} {emb.precision}"
    half, full = vectors[("cuda", "fp16")], vectors[("cuda", "fp32")]
    out["fp16-vs-fp32-min-cosine"] = float(np.min(np.sum(half * full, axis=1)))
    out["cuda-vs-cpu-fp32-min-cosine"] = float(np.min(np.sum(full * vectors[("cpu", "fp32")], axis=1)))
    return out


def faiss_check(n: int, dim: int, nq: int) -> dict[str, Any]:
    try:
        import faiss
    except Exception as err:                                              # a missing CUDA 12 library, say
        return {"import": f"failed: {type(err).__name__}: {err}"}
    import numpy as np

    from s3_agents.embedders import HashingEmbedder
    from s3_agents.retrievers.faiss import FaissRetriever, gpu_count, make_faiss_index
    from s3_agents.types import Passage

    out: dict[str, Any] = {"faiss": faiss.__version__, "gpus": gpu_count()}
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n, dim), dtype=np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[rng.integers(0, n, nq)] + 0.05 * rng.standard_normal((nq, dim), dtype=np.float32)
    passages = [Passage(str(i), "", "") for i in range(n)]
    for kind in ("flat", "ivfpq"):
        index = make_faiss_index(data, kind) if kind == "flat" else None
        if index is None:
            from s3_agents.retrievers.faiss import faiss_factory, fill_faiss_index, new_faiss_index

            index = new_faiss_index(faiss_factory("ivfpq", n, dim), dim)
            fill_faiss_index(index, [data], sample=lambda size: data[:size], n=n)
        timings = {}
        results = {}
        for gpu in (False, True):
            retriever = FaissRetriever(index, passages, HashingEmbedder(dim), gpu=gpu)
            retriever.search_vectors(queries[:10], 10)
            start = time.perf_counter()
            hits = retriever.search_vectors(queries, 10)
            timings[gpu] = nq / (time.perf_counter() - start)
            results[gpu] = [[p.id for p in row] for row in hits]
            out[f"{kind}-{'gpu' if gpu else 'cpu'}-class"] = type(retriever.index).__name__
        same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(results[False], results[True])])
        out[f"{kind}-cpu-qps"], out[f"{kind}-gpu-qps"] = timings[False], timings[True]
        out[f"{kind}-gpu-vs-cpu-overlap@10"] = float(same)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm", type=Path, required=True)
    parser.add_argument("--wheels", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.wheels:
        site = Path("/tmp/s3-gpu-site")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                        *map(str, sorted(args.wheels.glob("*.whl")))], check=True)
        sys.path.insert(0, str(site))
        runtime = site / "nvidia" / "cuda_runtime" / "lib"
        if runtime.is_dir():                                              # libcudart.so.12 for faiss-gpu-cu12
            import ctypes

            for lib in sorted(runtime.glob("libcudart.so*")):
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    import_library()
    corpus = [json.loads(line) for line in (ROOT / "s3_agents" / "data" / "demo_corpus.jsonl").read_text().splitlines()]
    texts = [c["contents"] for c in corpus] * 40                         # 10,800 passages
    result = {"embedder": embedder_check(args.minilm, texts), "faiss": faiss_check(args.n, 384, 1000)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
