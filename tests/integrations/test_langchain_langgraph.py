"""The LangGraph node and RAG graph (core), and the langchain-s3 retriever in a chain (the retriever's and the
tool's offline unit tests are in integrations/langchain-s3/tests/; against a llama.cpp server they run as
docs/integrations.md shows them, in tests/integrations/test_doc_examples.py)."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_s3 import S3Retriever
from langgraph.graph import END, START, StateGraph

from s3_agents import Generator, Passage, build_rag_graph, s3_search_node
from tests.integrations.conftest import QUESTION


def test_node_in_a_user_graph_with_its_own_keys(scripted_searcher) -> None:
    class Mine(TypedDict, total=False):
        user_question: str
        passages: list[Passage]
        summary: str

    graph = StateGraph(Mine)
    graph.add_node("search", s3_search_node(scripted_searcher, question_key="user_question",
                                            context_key="passages", queries_key=None))
    graph.add_node("summarise", lambda s: {"summary": ", ".join(p.title for p in s["passages"])})
    graph.add_edge(START, "search")
    graph.add_edge("search", "summarise")
    graph.add_edge("summarise", END)
    app = graph.compile()
    steps = [next(iter(step)) for step in app.stream({"user_question": QUESTION})]
    assert steps == ["search", "summarise"]
    assert app.invoke({"user_question": QUESTION})["summary"].startswith("Ketroul")


def test_rag_graph_streams_and_runs_async(scripted_searcher, scripted_generator) -> None:
    graph = build_rag_graph(scripted_searcher, scripted_generator)
    assert [next(iter(s)) for s in graph.stream({"question": QUESTION})] == ["s3_search", "generate"]
    result = asyncio.run(graph.ainvoke({"question": QUESTION}))
    assert result["answer"] == "mobroun" and result["queries"] == ["Ketroul currency"]


def test_generator_swap_is_one_setting(monkeypatch) -> None:
    monkeypatch.setenv("S3_GENERATOR_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("S3_GENERATOR_MODEL", "Qwen/Qwen2.5-7B-Instruct")
    generator = Generator.from_env()
    assert generator.client.base_url == "http://127.0.0.1:8000/v1" and generator.name == "Qwen/Qwen2.5-7B-Instruct"
    monkeypatch.delenv("S3_GENERATOR_MODEL")
    with pytest.raises(ValueError, match="S3_GENERATOR_MODEL"):
        Generator.from_env()


def test_the_retriever_in_a_chain_hands_its_passages_to_the_model(scripted_searcher) -> None:
    """An LCEL chain with the s3 retriever as its context step (the model: LangChain's own fake; the real one, on a
    llama.cpp server, runs in the documented examples, tests/integrations/test_doc_examples.py)."""
    seen: list[str] = []
    model = FakeListChatModel(responses=["mobroun"])
    prompt = ChatPromptTemplate.from_messages([("system", "Answer from these passages:\n{context}"), ("user", "{q}")])
    passages = S3Retriever(searcher=scripted_searcher) | (lambda docs: "\n".join(d.page_content for d in docs))
    chain = ({"context": passages, "q": RunnablePassthrough()} | prompt
             | (lambda value: seen.append(value.to_string()) or value) | model | StrOutputParser())
    assert chain.invoke(QUESTION) == "mobroun"
    system, question = seen[0].split("Human:")
    assert "mobroun" in system and question.strip() == QUESTION        # Ketroul's passage, then the question
