"""The s3 searcher as a LlamaIndex retriever, and LlamaIndex retrievers as the searcher's backend.

``pip install llama-index-retrievers-s3``. Three pieces:

* :class:`S3Retriever`: a ``BaseRetriever`` that runs an s3 episode and returns the selected passages as
  ``NodeWithScore``; it drops into ``RetrieverQueryEngine``, ``RouterQueryEngine`` / ``QueryEngineTool``.
* :class:`LlamaIndexBackend`: any LlamaIndex retriever or ``VectorStoreIndex`` as the searcher's search
  engine, so an existing index serves the searcher.
* :func:`llamaindex_embedding`: an s3-agents embedder (offline MiniLM by default) as a LlamaIndex embedding.

Example:
    >>> from llama_index.core.query_engine import RetrieverQueryEngine        # doctest: +SKIP
    >>> from llama_index.retrievers.s3 import S3Retriever, openai_compatible_llm  # doctest: +SKIP
    >>> llm = openai_compatible_llm("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP
    >>> retriever = S3Retriever.from_endpoint(index_dir_or_retriever, llm_url, llm_model)    # doctest: +SKIP
    >>> RetrieverQueryEngine.from_args(retriever, llm=llm).query("Who founded Gritia?")      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from s3_agents import Passage, S3Searcher, SearchConfig
from s3_agents.embedders import Embedder, load_embedder
from s3_agents.llm import ChatClient, OpenAICompatClient
from s3_agents.retrievers import Retriever, load_retriever

__all__ = ["S3Retriever", "LlamaIndexBackend", "llamaindex_embedding", "openai_compatible_llm", "passage_to_node"]


def passage_to_node(passage: Passage, **metadata: Any) -> NodeWithScore:
    """A passage as a scored LlamaIndex node (id, title and any extra metadata kept)."""
    node = TextNode(id_=passage.id, text=passage.text, metadata={"title": passage.title, **metadata})
    return NodeWithScore(node=node, score=passage.score)


class S3Retriever(BaseRetriever):
    """Retrieval by an s3 searcher: the passages it selected, as ``NodeWithScore``.

    Args:
        searcher: The searcher (LLM + search backend + loop settings).

    Each node's metadata holds ``title``, the episode's ``queries`` and ``stop_reason``.
    """

    def __init__(self, searcher: S3Searcher, **kwargs: Any) -> None:
        self.searcher = searcher
        super().__init__(**kwargs)

    @classmethod
    def from_endpoint(cls, backend: Any, base_url: str, model: str, *, api_key: str | None = None,
                      config: SearchConfig | None = None) -> S3Retriever:
        """A searcher LLM at an OpenAI-compatible endpoint over ``backend``.

        ``backend`` is an s3-agents index directory or server URL, an s3-agents retriever, or any
        LlamaIndex retriever / index (wrapped in :class:`LlamaIndexBackend`).
        """
        return cls(S3Searcher(OpenAICompatClient(base_url, model, api_key=api_key), _backend(backend), config))

    @classmethod
    def from_client(cls, policy: ChatClient, backend: Any, config: SearchConfig | None = None) -> S3Retriever:
        """A searcher from any s3-agents LLM client over ``backend`` (see :meth:`from_endpoint`)."""
        return cls(S3Searcher(policy, _backend(backend), config))

    @classmethod
    def from_trained(cls, backend: Any = None, *, name: str | None = None, engine: str = "llama.cpp",
                     device: str = "cpu") -> S3Retriever:
        """A searcher this package ships (SmolLM2-135M + its trained LoRA adapter, constrained, with the
        settings it was trained with) over ``backend`` (see :meth:`from_endpoint`; default: the shipped corpus
        it goes with, indexed once).

        ``name`` picks the searcher: ``"real"`` (trained on real multi-hop questions; the default, over 293
        HotpotQA Wikipedia paragraphs) or ``"world"`` (trained on the benchmark world, over its 2,000 passages).
        ``engine`` runs it in llama.cpp (the default: seconds per question) or ``"transformers"`` (the weights
        PPO trained, merged; ``device`` picks CPU or GPU).

        Example:
            >>> retriever = S3Retriever.from_trained(my_index)                              # doctest: +SKIP
            >>> nodes = retriever.retrieve("Which English musician wrote 'See Yourself'?")  # doctest: +SKIP
            >>> world = S3Retriever.from_trained(name="world")                               # doctest: +SKIP
        """
        from s3_agents.trained import trained_config, trained_searcher, trained_world
        from s3_agents.worlds import default_world_retriever

        search = default_world_retriever(name=trained_world(name)) if backend is None else _backend(backend)
        return cls(S3Searcher(trained_searcher(name, engine=engine, device=device),  # type: ignore[arg-type]
                              search, trained_config(name)))

    def _nodes(self, state: dict[str, Any]) -> list[NodeWithScore]:
        extra = {"queries": list(state["queries"]), "stop_reason": state["stop_reason"]}
        return [passage_to_node(p, **extra) for p in state["context"]]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(self.searcher.search(query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(await self.searcher.asearch(query_bundle.query_str))


def _backend(backend: Any) -> Retriever:
    if isinstance(backend, Retriever):
        return backend
    if isinstance(backend, str) or hasattr(backend, "__fspath__"):
        return load_retriever(backend)
    return LlamaIndexBackend(backend)


class LlamaIndexBackend(Retriever):
    """A LlamaIndex retriever (or an index, via ``as_retriever``) behind the s3-agents retriever protocol.

    Args:
        source: A LlamaIndex ``BaseRetriever``, or an index with ``as_retriever(similarity_top_k=...)``
            such as ``VectorStoreIndex``.

    The node's ``metadata["title"]`` becomes the passage title when present.
    """

    def __init__(self, source: Any) -> None:
        if not (isinstance(source, BaseRetriever) or hasattr(source, "as_retriever")):
            raise TypeError(f"expected a LlamaIndex retriever or index, got {type(source).__name__}")
        self.source = source
        self._by_k: dict[int, BaseRetriever] = {}

    def _retriever(self, k: int) -> BaseRetriever:
        """A retriever fixed at ``k`` results, never the user's own one changed in place.

        LlamaIndex fixes ``similarity_top_k`` when a retriever is built: an index builds one per ``k``;
        a retriever that has the attribute is copied once per ``k`` (a shallow copy, sharing the index);
        any other retriever is used as it is and its results cut to ``k``.
        """
        if k not in self._by_k:
            if not isinstance(self.source, BaseRetriever):
                self._by_k[k] = self.source.as_retriever(similarity_top_k=k)
            elif hasattr(self.source, "similarity_top_k"):
                fixed = copy.copy(self.source)
                fixed.similarity_top_k = k
                self._by_k[k] = fixed
            else:
                self._by_k[k] = self.source
        return self._by_k[k]

    @staticmethod
    def _passages(nodes: Sequence[NodeWithScore], k: int) -> list[Passage]:
        return [Passage(id=n.node.node_id, title=str(n.node.metadata.get("title", "")),
                        text=n.node.get_content(), score=n.score) for n in list(nodes)[:k]]

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        retriever = self._retriever(k)
        return [self._passages(retriever.retrieve(q), k) for q in queries]

    async def asearch(self, queries: Sequence[str], k: int = 3) -> list[list[Passage]]:
        from s3_agents.retrievers.base import check_queries

        retriever = self._retriever(k)
        found = await asyncio.gather(*(retriever.aretrieve(q) for q in check_queries(queries, k)))
        return [self._passages(nodes, k) for nodes in found]


class _S3Embedding(BaseEmbedding):
    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.spec, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed_queries([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed_passages([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_passages(texts).tolist()

    # The model runs in a worker thread: on the event loop it would stall every other request.
    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


def llamaindex_embedding(embedder: Embedder | str = "minilm") -> BaseEmbedding:
    """An s3-agents embedder (or spec, default the offline MiniLM) as a LlamaIndex embedding model."""
    return _S3Embedding(load_embedder(embedder) if isinstance(embedder, str) else embedder)


def openai_compatible_llm(base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> Any:
    """A LlamaIndex LLM for any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI): the generator swap.

    Temperature 0, answers of at most 512 tokens (``max_tokens=None`` leaves the length to the endpoint), a chat
    model with an 8,192-token window; any ``OpenAILike`` field may be passed.
    """
    from llama_index.llms.openai_like import OpenAILike  # imported on use: it pulls in the openai client
    kwargs.setdefault("is_chat_model", True)
    kwargs.setdefault("context_window", 8192)
    kwargs.setdefault("temperature", 0.0)
    kwargs.setdefault("max_tokens", 512)
    return OpenAILike(model=model, api_base=base_url, api_key=api_key or "none", **kwargs)
