"""LlamaIndex with the real MiniLM embedder and a llama.cpp server (the offline unit tests are in
integrations/llama-index-retrievers-s3/tests/)."""

from __future__ import annotations

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine, RouterQueryEngine
from llama_index.core.schema import TextNode
from llama_index.core.selectors import LLMSingleSelector
from llama_index.core.tools import QueryEngineTool
from llama_index.retrievers.s3 import LlamaIndexBackend, S3Retriever, llamaindex_embedding, openai_compatible_llm

from s3_agents import OpenAICompatClient, S3Searcher, SearchConfig, load_demo_corpus
from tests.integrations.conftest import QUESTION, scripted_policy


@pytest.fixture(scope="module")
def vector_index(minilm) -> VectorStoreIndex:
    nodes = [TextNode(id_=p.id, text=p.text, metadata={"title": p.title}) for p in load_demo_corpus().passages]
    return VectorStoreIndex(nodes, embed_model=llamaindex_embedding(minilm))


def test_vector_store_index_serves_the_searcher(vector_index, demo_faiss) -> None:
    retriever = S3Retriever.from_client(scripted_policy(), vector_index)
    nodes = retriever.retrieve(QUESTION)
    assert isinstance(retriever.searcher.context.retriever, LlamaIndexBackend)
    # Same embedder, same passages: the index backend finds what the FAISS retriever finds.
    direct = S3Retriever.from_client(scripted_policy(), demo_faiss).retrieve(QUESTION)
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in direct]
    backend = LlamaIndexBackend(vector_index)
    assert len(backend.search(["Gritia river"], k=5)[0]) == 5
    assert backend.search(["Gritia river"], k=2)[0][0].title == "Gritia"
    with pytest.raises(TypeError, match="LlamaIndex retriever or index"):
        LlamaIndexBackend(object())


@pytest.mark.slow
def test_query_engine_and_router_with_a_llama_cpp_server(llama_server, demo_faiss, vector_index) -> None:
    llm = openai_compatible_llm(llama_server.url, llama_server.model, max_tokens=48)
    policy = OpenAICompatClient(llama_server.url, llama_server.model)
    s3 = S3Retriever(S3Searcher(policy, demo_faiss, SearchConfig(max_turns=1, max_new_tokens=48)))
    engine = RetrieverQueryEngine.from_args(s3, llm=llm)
    response = engine.query(QUESTION)
    assert str(response).strip()
    assert response.source_nodes and all(n.node.metadata["queries"] is not None for n in response.source_nodes)

    plain = RetrieverQueryEngine.from_args(vector_index.as_retriever(similarity_top_k=3), llm=llm)
    router = RouterQueryEngine(
        selector=LLMSingleSelector.from_defaults(llm=llm),
        query_engine_tools=[
            QueryEngineTool.from_defaults(engine, description="Multi-hop questions about the Archipelago of "
                                                              "Veloria, answered by a search agent."),
            QueryEngineTool.from_defaults(plain, description="Single look-ups in the archipelago documents."),
        ],
        llm=llm,
    )
    routed = router.query(QUESTION)
    assert str(routed).strip() and routed.source_nodes
