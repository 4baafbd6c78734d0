"""LlamaIndex with the real MiniLM embedder (the offline unit tests are in
integrations/llama-index-retrievers-s3/tests/; the query engine and the router with a llama.cpp server run as
docs/integrations.md shows them, in tests/integrations/test_doc_examples.py)."""

from __future__ import annotations

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.retrievers.s3 import LlamaIndexBackend, S3Retriever, llamaindex_embedding

from s3_agents import load_demo_corpus
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
