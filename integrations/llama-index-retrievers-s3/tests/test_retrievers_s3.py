"""S3Retriever and LlamaIndexBackend in LlamaIndex's own objects, offline (scripted searcher, hashing embedder).

The end-to-end tests against a llama.cpp server are in the s3-agents repository, tests/integrations/.
"""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import TextNode
from llama_index.retrievers.s3 import LlamaIndexBackend, S3Retriever, llamaindex_embedding, openai_compatible_llm

from s3_agents import FaissRetriever, S3Searcher, load_demo_corpus, load_embedder
from s3_agents.testing import ScriptedClient, on_event_loop

QUESTION = "What is the currency of Ketroul?"


@pytest.fixture(scope="module")
def embedder():
    return load_embedder("hashing")


@pytest.fixture(scope="module")
def faiss(embedder) -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, embedder)


@pytest.fixture(scope="module")
def vector_index(embedder) -> VectorStoreIndex:
    nodes = [TextNode(id_=p.id, text=p.text, metadata={"title": p.title}) for p in load_demo_corpus().passages]
    return VectorStoreIndex(nodes, embed_model=llamaindex_embedding(embedder))


def test_is_a_llamaindex_retriever(faiss) -> None:
    retriever = S3Retriever(S3Searcher(ScriptedClient.one_search("Ketroul currency"), faiss))
    assert BaseRetriever in S3Retriever.__mro__
    nodes = retriever.retrieve(QUESTION)
    assert nodes[0].node.metadata["title"] == "Ketroul" and "currency" in nodes[0].node.get_content()
    assert nodes[0].node.metadata["queries"] == ["Ketroul currency"] and nodes[0].score > 0
    assert nodes[0].node.metadata["stop_reason"]
    assert len(asyncio.run(retriever.aretrieve(QUESTION))) == len(nodes)


def test_vector_store_index_serves_the_searcher(vector_index) -> None:
    retriever = S3Retriever.from_client(ScriptedClient.one_search("Ketroul currency"), vector_index)
    nodes = retriever.retrieve(QUESTION)
    assert isinstance(retriever.searcher.context.retriever, LlamaIndexBackend)
    assert nodes[0].node.metadata["title"] == "Ketroul" and nodes[0].node.metadata["queries"] == ["Ketroul currency"]
    backend = LlamaIndexBackend(vector_index)
    assert len(backend.search(["Gritia river"], k=5)[0]) == 5
    assert backend.search(["Gritia"], k=2)[0][0].title == "Gritia"
    with pytest.raises(TypeError, match="LlamaIndex retriever or index"):
        LlamaIndexBackend(object())


def test_backend_never_changes_the_users_retriever(vector_index) -> None:
    """Concurrent searches with different k each get their k, and the user's retriever keeps its own."""
    users = vector_index.as_retriever(similarity_top_k=2)
    backend = LlamaIndexBackend(users)

    async def main():
        return await asyncio.gather(*(backend.asearch(["Gritia river"], k=k) for k in (1, 5, 3, 4)))

    assert [len(hits[0]) for hits in asyncio.run(main())] == [1, 5, 3, 4]
    assert users.similarity_top_k == 2 and len(users.retrieve("Gritia river")) == 2


def test_concurrent_async_retrievals_each_get_their_own_episode(faiss) -> None:
    """One S3Retriever shared by concurrent aretrieve calls: each gets what its question gets alone."""
    titles = [p.title for p in load_demo_corpus().passages[:8]]
    questions = [f"What do we know about {title}?" for title in titles]
    retriever = S3Retriever(S3Searcher(ScriptedClient.one_search(lambda q: q.split(" about ")[-1][:-1]), faiss))
    alone = [[(n.node.node_id, n.node.metadata["queries"]) for n in retriever.retrieve(q)] for q in questions]

    async def together():
        return await asyncio.gather(*(retriever.aretrieve(q) for q in questions))

    assert [[(n.node.node_id, n.node.metadata["queries"]) for n in nodes] for nodes in asyncio.run(together())] == alone
    assert [episode[0][1] for episode in alone] == [[title] for title in titles]


def test_embeddings_run_off_the_event_loop_and_queries_run_together() -> None:
    """The embedding model runs in a worker thread, and the backend's queries overlap instead of queueing."""
    from llama_index.core.schema import NodeWithScore

    from s3_agents import HashingEmbedder

    class Recording(HashingEmbedder):
        on_loop: list[bool] = []

        def _embed(self, texts):
            self.on_loop.append(on_event_loop())
            return super()._embed(texts)

    model = llamaindex_embedding(Recording())

    async def embed():
        await model.aget_query_embedding("Gritia river")
        await model.aget_text_embedding("Gritia is a river.")
        await model.aget_text_embedding_batch(["a", "b", "c"])

    asyncio.run(embed())
    assert Recording.on_loop and not any(Recording.on_loop)

    class Slow(BaseRetriever):
        def __init__(self) -> None:
            super().__init__()
            self.active = self.peak = 0

        def _retrieve(self, query_bundle):
            raise AssertionError("the async path must not fall back to the blocking one")

        async def _aretrieve(self, query_bundle):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.05)
            self.active -= 1
            return [NodeWithScore(node=TextNode(id_=query_bundle.query_str, text="x"), score=1.0)]

    slow = Slow()
    hits = asyncio.run(LlamaIndexBackend(slow).asearch(["q1", "q2", "q3", "q4"], k=1))
    assert [h[0].id for h in hits] == ["q1", "q2", "q3", "q4"] and slow.peak == 4


def test_generator_llm_points_at_the_endpoint_with_bounded_answers() -> None:
    llm = openai_compatible_llm("http://127.0.0.1:9/v1", "smollm2")
    assert (llm.api_base, llm.model, llm.temperature, llm.max_tokens) == ("http://127.0.0.1:9/v1", "smollm2", 0.0, 512)
    assert openai_compatible_llm("http://127.0.0.1:9/v1", "smollm2", max_tokens=None).max_tokens is None
