"""Build the s3 search loop as a LangGraph ``StateGraph``."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from s3_agents.graph import nodes
from s3_agents.graph.state import SearchContext, SearchInput, SearchState

__all__ = ["build_search_graph"]


def build_search_graph(*, name: str = "s3_searcher", checkpointer: Any = None) -> CompiledStateGraph:
    """The s3 searcher: initial retrieval, then turns of policy -> select -> retrieve, then stop.

    Dependencies (searcher LLM, retriever, loop settings) are run-time context, so one compiled
    graph serves any of them; :class:`~s3_agents.S3Searcher` bundles graph and context.

    Args:
        name: Graph name (shown in traces and when used as a subgraph).
        checkpointer: Optional LangGraph checkpointer (needs a ``thread_id`` in the config).

    Returns:
        A compiled graph: ``invoke`` / ``ainvoke`` / ``stream`` / ``astream`` / ``batch`` / ``abatch``
        take ``{"question": ...}`` and ``context=SearchContext(...)``.

    Example:
        >>> from s3_agents.testing import ScriptedClient
        >>> from s3_agents import FaissRetriever, HashingEmbedder, load_demo_corpus
        >>> graph = build_search_graph()
        >>> retriever = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())
        >>> policy = ScriptedClient(['<query>{"query": "Ketroul currency"}</query>',
        ...                          "<important_info>[1]</important_info><search_complete>True</search_complete>"])
        >>> final = graph.invoke({"question": "What is the currency of Ketroul"},
        ...                      context=SearchContext(policy=policy, retriever=retriever))
        >>> len(final["queries"]), final["stop_reason"], final["context"][0].title
        (1, 'complete', 'Ketroul')
    """
    builder = StateGraph(SearchState, context_schema=SearchContext, input_schema=SearchInput)
    builder.add_node("initial_retrieval", RunnableLambda(nodes.initial_retrieval, afunc=nodes.ainitial_retrieval,
                                                         name="initial_retrieval"))
    builder.add_node("policy", RunnableLambda(nodes.policy_turn, afunc=nodes.apolicy_turn, name="policy"))
    builder.add_node("select", nodes.select)
    builder.add_node("retrieve", RunnableLambda(nodes.retrieve, afunc=nodes.aretrieve, name="retrieve"))
    builder.add_node("feedback", nodes.feedback)
    builder.add_node("stop", nodes.stop)
    builder.add_edge(START, "initial_retrieval")
    builder.add_edge("initial_retrieval", "policy")
    builder.add_edge("policy", "select")
    builder.add_conditional_edges("select", nodes.route, {"retrieve": "retrieve", "feedback": "feedback",
                                                          "stop": "stop"})
    builder.add_edge("retrieve", "policy")
    builder.add_edge("feedback", "policy")
    builder.add_edge("stop", END)
    return builder.compile(name=name, checkpointer=checkpointer)
