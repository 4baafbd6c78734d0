"""The s3 searcher inside a user's LangGraph graph: a node, and an example retrieve-then-generate graph.

Two ways in:

* :func:`s3_search_node`: a node function (sync and async) that reads the question from the user's state
  and writes the selected passages back, for any state schema;
* ``build_search_graph()`` itself as a subgraph when the user's state has ``question`` / ``context`` keys and
  the graph's ``context_schema`` is ``SearchContext`` (see docs/integrations.md).

For tool-calling agents use ``langchain_s3.s3_search_tool`` (the ``langchain-s3`` distribution).

Example:
    >>> from s3_agents import build_rag_graph, s3_search_node      # doctest: +SKIP
    >>> builder.add_node("search", s3_search_node(searcher))       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from s3_agents.generator import Generator
from s3_agents.searcher import S3Searcher
from s3_agents.types import Passage

__all__ = ["s3_search_node", "RagState", "build_rag_graph"]


def s3_search_node(searcher: S3Searcher, *, question_key: str = "question", context_key: str = "context",
                   queries_key: str | None = "queries") -> Runnable:
    """A LangGraph node that runs an s3 episode.

    Args:
        searcher: The searcher.
        question_key: State key holding the question.
        context_key: State key that receives the selected passages (``list[Passage]``).
        queries_key: State key that receives the searcher's queries (``None``: not written).
    """

    def update(state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {context_key: state["context"]}
        if queries_key:
            out[queries_key] = state["queries"]
        return out

    def run(state: dict[str, Any]) -> dict[str, Any]:
        return update(searcher.search(state[question_key]))

    async def arun(state: dict[str, Any]) -> dict[str, Any]:
        return update(await searcher.asearch(state[question_key]))

    return RunnableLambda(run, afunc=arun, name="s3_search")


class RagState(TypedDict, total=False):
    """State of :func:`build_rag_graph`."""

    question: str
    context: list[Passage]
    queries: list[str]
    answer: str


def build_rag_graph(searcher: S3Searcher, generator: Generator) -> CompiledStateGraph:
    """Retrieve with the s3 searcher, then answer with the generator: ``START -> s3_search -> generate -> END``.

    Example:
        >>> graph = build_rag_graph(searcher, Generator(llm))                   # doctest: +SKIP
        >>> graph.invoke({"question": "Who founded Seloun Guild?"})["answer"]   # doctest: +SKIP
    """

    def generate(state: RagState) -> dict[str, Any]:
        return {"answer": generator.answer(state["question"], state["context"])}

    async def agenerate(state: RagState) -> dict[str, Any]:
        return {"answer": await generator.aanswer(state["question"], state["context"])}

    builder = StateGraph(RagState)
    builder.add_node("s3_search", s3_search_node(searcher))
    builder.add_node("generate", RunnableLambda(generate, afunc=agenerate, name="generate"))
    builder.add_edge(START, "s3_search")
    builder.add_edge("s3_search", "generate")
    builder.add_edge("generate", END)
    return builder.compile(name="s3_rag")
