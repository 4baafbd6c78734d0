"""The LangGraph node and RAG graph (core), and the langchain-s3 retriever and tool against a llama.cpp server
(their offline unit tests are in integrations/langchain-s3/tests/)."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_s3 import S3Retriever, openai_compatible_chat_model, s3_search_tool
from langgraph.graph import END, START, StateGraph

from s3_agents import Generator, OpenAICompatClient, Passage, S3Searcher, SearchConfig, build_rag_graph, s3_search_node
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


@pytest.mark.slow
def test_chain_tool_and_graph_with_a_llama_cpp_server(llama_server, demo_faiss) -> None:
    policy = OpenAICompatClient(llama_server.url, llama_server.model)
    searcher = S3Searcher(policy, demo_faiss, SearchConfig(max_turns=1, max_new_tokens=48))
    llm = openai_compatible_chat_model(llama_server.url, llama_server.model, max_tokens=32)
    retriever = S3Retriever(searcher=searcher)
    prompt = ChatPromptTemplate.from_messages([("system", "Answer from these passages:\n{context}"), ("user", "{q}")])
    chain = ({"context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
              "q": RunnablePassthrough()} | prompt | llm | StrOutputParser())
    assert chain.invoke(QUESTION).strip()
    # The user's own LangChain model as the agent's brain, the s3 tool as its search.
    message = s3_search_tool(searcher).invoke({"type": "tool_call", "id": "c", "name": "s3_search",
                                               "args": {"question": QUESTION}})
    assert "Doc 1 (Title:" in message.content
    graph = build_rag_graph(searcher, Generator.from_endpoint(llama_server.url, llama_server.model))
    steps = list(graph.stream({"question": QUESTION}, stream_mode="updates"))
    assert [next(iter(s)) for s in steps] == ["s3_search", "generate"] and steps[-1]["generate"]["answer"]
