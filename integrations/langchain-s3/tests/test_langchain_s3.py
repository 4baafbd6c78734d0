"""The retriever and the tool in LangChain's own objects, offline (scripted searcher, hashing embedder).

The end-to-end tests against a llama.cpp server are in the s3-agents repository, tests/integrations/.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_core.messages import ToolMessage
from langchain_core.retrievers import BaseRetriever
from langchain_s3 import S3Retriever, openai_compatible_chat_model, s3_search_tool

from s3_agents import FaissRetriever, S3Searcher, load_demo_corpus, load_embedder
from s3_agents.testing import ScriptedClient

QUESTION = "What is the currency of Ketroul?"


@pytest.fixture(scope="module")
def faiss() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, load_embedder("hashing"))


@pytest.fixture()
def searcher(faiss) -> S3Searcher:
    return S3Searcher(ScriptedClient.one_search("Ketroul currency"), faiss)


def test_retriever_returns_documents(searcher) -> None:
    retriever = S3Retriever(searcher=searcher)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(QUESTION)
    assert all(isinstance(d, Document) for d in docs) and docs[0].metadata["title"] == "Ketroul"
    assert docs[0].metadata["queries"] == ["Ketroul currency"] and docs[0].id == docs[0].metadata["id"]
    assert [d.id for d in asyncio.run(retriever.ainvoke(QUESTION))] == [d.id for d in docs]
    assert len(retriever.batch([QUESTION, QUESTION])) == 2


def test_tool_call_returns_text_and_documents(searcher) -> None:
    tool = s3_search_tool(searcher)
    message = tool.invoke({"type": "tool_call", "id": "call-1", "name": "s3_search", "args": {"question": QUESTION}})
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call-1"
    assert message.content.startswith("Doc 1 (Title: Ketroul)") and message.artifact[0].metadata["title"] == "Ketroul"
    assert tool.args_schema.model_json_schema()["required"] == ["question"]


def test_chat_model_points_at_the_endpoint() -> None:
    llm = openai_compatible_chat_model("http://127.0.0.1:9/v1", "smollm2", max_tokens=8)
    assert llm.openai_api_base == "http://127.0.0.1:9/v1" and llm.model_name == "smollm2" and llm.temperature == 0
    assert llm.max_tokens == 8 and openai_compatible_chat_model("http://127.0.0.1:9/v1", "smollm2").max_tokens == 512


def test_concurrent_async_use_keeps_each_question_apart(faiss) -> None:
    """One retriever and one tool shared by concurrent async calls: each gets what its question gets alone."""
    titles = [p.title for p in load_demo_corpus().passages[:8]]
    questions = [f"What do we know about {title}?" for title in titles]
    searcher = S3Searcher(ScriptedClient.one_search(lambda q: q.split(" about ")[-1][:-1]), faiss)
    retriever, tool = S3Retriever(searcher=searcher), s3_search_tool(searcher)
    alone = [[(d.id, d.metadata["queries"]) for d in retriever.invoke(q)] for q in questions]

    async def together():
        docs = retriever.abatch(questions)
        texts = asyncio.gather(*(tool.ainvoke({"question": q}) for q in questions))
        return await asyncio.gather(docs, texts)

    docs, texts = asyncio.run(together())
    assert [[(d.id, d.metadata["queries"]) for d in episode] for episode in docs] == alone
    assert [episode[0][1] for episode in alone] == [[title] for title in titles]
    assert texts == [tool.invoke({"question": q}) for q in questions]
