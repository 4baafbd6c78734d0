"""Distributed index builds: the embedding of a build's chunks on a Ray cluster, with Ray Data.

``s3 index build ... --ray ADDRESS`` embeds with :class:`RayEmbedding`: a Ray Data pipeline over the chunks
that are not saved yet, ``map_batches`` with one embedder per worker (a pool of actors, each loading the
model once), results streamed back in order. The driver saves each chunk exactly as a local build does
(``.partial/``, atomic, resumable) and writes the same index layout, or the same Qdrant shard. Every
worker must have s3-agents and the embedder's model installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from s3_agents.embedders import Embedder, load_embedder

__all__ = ["RayEmbedding"]

logger = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is a separate part of Ray)
    except ImportError as err:
        raise ImportError("--ray needs Ray Data: pip install 'ray[data]' (or s3-agents[train], which has it)") from err
    return ray


class _EmbedChunk:
    """One per Ray worker: loads the embedder once, then embeds whole chunks."""

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        self.embedder = load_embedder(spec, **options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = [np.ascontiguousarray(self.embedder.embed_passages([str(t) for t in texts]), dtype=np.float32)
                   for texts in batch["texts"]]
        return {"chunk": batch["chunk"], "rows": np.array([len(v) for v in vectors]),
                "vectors": np.array([v.tobytes() for v in vectors], dtype=object)}


class RayEmbedding:
    """Embed an index build's chunks on a Ray cluster (a :data:`~s3_agents.retrievers._store.ChunkEmbedding`).

    Args:
        address: The cluster: ``"auto"`` (the one this machine belongs to), ``"ray://host:10001"``,
            ``"host:6379"``, or ``"local"`` to start Ray on this machine alone.
        workers: Embedders running at once (one Ray actor each).
        cpus_per_worker: CPUs each worker reserves.
        gpus_per_worker: GPUs each worker reserves (then the embedder runs on that GPU, in fp16).
        batch_size: Texts per forward pass on a worker.

    Example:
        >>> from s3_agents.retrievers import build_index
        >>> build_index(passages, "wiki-idx", distribute=RayEmbedding("auto", workers=8, gpus_per_worker=1))
        ... # doctest: +SKIP
    """

    def __init__(self, address: str = "auto", *, workers: int = 2, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, batch_size: int = 64) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.batch_size = batch_size

    def __call__(self, embedder: Embedder, chunks: list[tuple[int, list[str]]]) -> Iterator[tuple[int, np.ndarray]]:
        ray = _ray()
        started = not ray.is_initialized()
        if started:
            ray.init(address=None if self.address == "local" else self.address, log_to_driver=False,
                     logging_level=logging.WARNING, include_dashboard=False)
        try:
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True
            context.enable_progress_bars = False
            options: dict[str, Any] = {"batch_size": self.batch_size}  # the hashing embedder ignores them
            if self.gpus_per_worker:
                options["device"] = "cuda"
            dataset = ray.data.from_items([{"chunk": i, "texts": texts} for i, texts in chunks],
                                          override_num_blocks=len(chunks))
            embedded = dataset.map_batches(
                _EmbedChunk, fn_constructor_kwargs={"spec": embedder.spec, "options": options}, batch_size=1,
                concurrency=self.workers, num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
                batch_format="numpy")
            logger.info("embedding %d chunks on Ray (%d workers)", len(chunks), self.workers)
            for batch in embedded.iter_batches(batch_size=1, batch_format="numpy"):
                rows = int(batch["rows"][0])
                vectors = np.frombuffer(batch["vectors"][0], dtype=np.float32).reshape(rows, -1)
                yield int(batch["chunk"][0]), vectors
        finally:
            if started:
                ray.shutdown()
