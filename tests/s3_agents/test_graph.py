"""The search graph driven by a scripted searcher over a real FAISS index of the demo corpus."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from s3_agents import ContextWindowError, FaissRetriever, HashingEmbedder, S3Searcher, SearchConfig, load_demo_corpus
from s3_agents.graph import SearchContext, build_search_graph
from s3_agents.protocol import INVALID_ACTION_FEEDBACK, Action
from s3_agents.testing import ScriptedClient
from s3_agents.types import Passage

Q = "What is the currency of the country where the creator of the Rukul engine was born?"


@pytest.fixture(scope="module")
def retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


def query(text: str, select: str | None = None) -> str:
    head = f"<important_info>{select}</important_info>\n" if select is not None else ""
    return f'{head}<search_complete>False</search_complete>\n<query>{{"query": "{text}"}}</query>'


def done(select: str | None = None) -> str:
    head = f"<important_info>{select}</important_info>\n" if select is not None else ""
    return head + "<search_complete>True</search_complete>"


def check_invariants(state, config: SearchConfig) -> None:
    searches, generations = len(state["queries"]), len(state["outputs"])
    assert searches <= config.max_turns and generations <= config.max_turns + 1
    assert [b["turn"] for b in state["blocks"]] == list(range(searches + 1))
    assert [b["query"] for b in state["blocks"][1:]] == state["queries"]
    assert len(state["messages"]) == 1 + generations + searches + state["invalid"]
    retrieved = {p.id for b in state["blocks"] for p in b["passages"]}
    assert {p.id for p in state["context"]} <= retrieved
    for block in state["blocks"]:
        if block["selected"] is not None:
            assert len(block["selected"]) <= config.max_select
            assert all(1 <= i <= len(block["passages"]) for i in block["selected"])
    model = [s["text"] for s in state["transcript"] if s["source"] == "model"]
    assert model == state["outputs"]
    assert state["transcript"][0]["source"] == "prompt"


def test_stop_at_once_keeps_the_initial_documents(retriever) -> None:
    searcher = S3Searcher(ScriptedClient([done()]), retriever)
    state = searcher.search("What is the currency of Ketroul")
    assert state["question"] == "What is the currency of Ketroul?"
    assert state["stop_reason"] == "complete" and state["queries"] == []
    assert [p.id for p in state["context"]] == [p.id for p in state["blocks"][0]["passages"]]
    assert len(state["context"]) == 3 and all(p.score is not None for p in state["context"])
    check_invariants(state, SearchConfig())


def test_search_select_stop(retriever) -> None:
    policy = ScriptedClient([query("Rukul engine"), query("Ropul Cugo born", select="[1]"), done(select="[1, 2]")])
    state = S3Searcher(policy, retriever).search(Q)
    assert state["queries"] == ["Rukul engine", "Ropul Cugo born"]
    assert state["stop_reason"] == "complete" and len(state["queries"]) == 2
    first, second = state["blocks"][1], state["blocks"][2]
    assert len(first["passages"]) == 8 and first["selected"] == [1] and second["selected"] == [1, 2]
    ids = [p.id for p in state["context"]]
    # Selected documents first (block order), then the initial block, which was never selected from.
    selected = [first["passages"][0].id, second["passages"][0].id, second["passages"][1].id]
    assert ids[:len(set(selected))] == list(dict.fromkeys(selected))
    assert set(ids) >= {p.id for p in state["blocks"][0]["passages"]}
    # The searcher saw the results of each query as a user message.
    assert policy.calls[1][-1]["content"].startswith("<information>\nDoc 1 (Title:")
    check_invariants(state, SearchConfig())


def test_turn_limit_means_searches(retriever) -> None:
    config = SearchConfig(max_turns=2)
    policy = ScriptedClient([query("a"), query("b"), query("c"), query("d")])
    state = S3Searcher(policy, retriever, config).search(Q)
    assert len(state["queries"]) == 2 and len(state["outputs"]) == 3
    assert state["stop_reason"] == "max_turns" and state["queries"] == ["a", "b"]
    # The unselected search blocks contribute all their documents (the reference's rule) ...
    assert len(state["context"]) > 8
    check_invariants(state, config)
    # ... or none, when configured so.
    lean = S3Searcher(ScriptedClient([query("a"), query("b"), query("c")]), retriever,
                      SearchConfig(max_turns=2, keep_unselected=False, keep_initial=False)).search(Q)
    assert lean["context"] == []


def test_fill_context_tops_up_the_budget_from_the_initial_documents_in_rank_order(retriever) -> None:
    def run(**options):
        config = SearchConfig(max_turns=2, keep_unselected=False, max_context_docs=3, **options)
        policy = ScriptedClient([query("Rukul engine", select="[2]"), done(select="[1]")])
        return S3Searcher(policy, retriever, config).search(Q)

    plain, filled = run(), run(fill_context=True)
    initial = [p.id for p in plain["blocks"][0]["passages"]]
    picked = [plain["blocks"][0]["passages"][1].id, plain["blocks"][1]["passages"][0].id]
    assert [p.id for p in plain["context"]] == list(dict.fromkeys(picked))        # 2 kept: one slot unused
    top_up = [i for i in initial if i not in picked]
    assert [p.id for p in filled["context"]] == (list(dict.fromkeys(picked)) + top_up)[:3]
    assert filled["context"][2].id == top_up[0]                                  # the best-ranked unused one
    # Never past the cap, and without a cap every initial document comes in.
    uncapped = S3Searcher(ScriptedClient([query("Rukul engine", select="[2]"), done(select="[1]")]), retriever,
                          SearchConfig(max_turns=2, keep_unselected=False, fill_context=True)).search(Q)
    assert set(initial) <= {p.id for p in uncapped["context"]} and len(uncapped["context"]) == 4


def test_new_results_shows_each_document_once_in_rank_order(retriever) -> None:
    def run(**options):
        config = SearchConfig(search_k=4, max_turns=2, **options)
        def searcher():
            return S3Searcher(ScriptedClient([query(Q), query(Q), done()]), retriever, config)
        return searcher().search(Q), asyncio.run(searcher().asearch(Q)), config

    ranked = [p.id for p in retriever.search([Q], 20)[0]]
    for state in run()[:2]:                          # s3's searches: the same query finds the same documents
        assert [p.id for p in state["blocks"][1]["passages"]] == ranked[:4]
        assert [p.id for p in state["blocks"][2]["passages"]] == ranked[:4]
    *states, config = run(new_results=True)
    for state in states:                             # sync and async: each search brings the next unseen ones
        assert [[p.id for p in b["passages"]] for b in state["blocks"]] == [ranked[:3], ranked[3:7], ranked[7:11]]
        check_invariants(state, config)


def test_an_episode_that_outgrows_the_window_ends_with_what_it_selected(retriever) -> None:
    def replies(messages):
        if len(messages) > 1:                                   # the first search's documents filled the window
            raise ContextWindowError("Requested tokens (9000) exceed context window of 8192", model="scripted")
        return query("Rukul engine", select="[2]")

    config = SearchConfig(keep_unselected=False)
    searcher = S3Searcher(ScriptedClient(replies), retriever, config)
    for state in (searcher.search(Q), asyncio.run(searcher.asearch(Q))):
        assert state["stop_reason"] == "context_full" and state["queries"] == ["Rukul engine"]
        assert len(state["outputs"]) == 1 and "context window is full" in state["problems"][-1]
        assert state["blocks"][1]["selected"] is None                       # never read
        assert [p.id for p in state["context"]] == [state["blocks"][0]["passages"][1].id]
        check_invariants(state, config)
    # `s3 search` prints such an episode turn by turn too.
    from s3_agents.cli.search import _run, console, print_trace

    with console.capture() as printed:
        print_trace(*asyncio.run(_run(searcher, Q)))
    assert "the context window is full" in printed.get() and "stop: context_full" in printed.get()


def test_zero_turns_only_stops(retriever) -> None:
    state = S3Searcher(ScriptedClient([query("anything")]), retriever, SearchConfig(max_turns=0)).search(Q)
    assert state["queries"] == [] and len(state["outputs"]) == 1 and state["stop_reason"] == "max_turns"


def test_invalid_output_gets_feedback_and_is_counted(retriever) -> None:
    policy = ScriptedClient(["I think the answer is mobroun.", query("Rukul engine"), done("[1]")])
    state = S3Searcher(policy, retriever).search(Q)
    assert state["invalid"] == 1 and state["stop_reason"] == "complete"
    assert "invalid action" in state["problems"][0]
    assert policy.calls[1][-1] == {"role": "user", "content": INVALID_ACTION_FEEDBACK}
    assert [s["source"] for s in state["transcript"]] == ["prompt", "model", "env", "model", "env", "model"]
    check_invariants(state, SearchConfig())


def test_endless_invalid_output_ends_the_episode(retriever) -> None:
    config = SearchConfig(max_turns=3)
    state = S3Searcher(ScriptedClient(lambda messages: "no tags at all"), retriever, config).search(Q)
    assert len(state["outputs"]) == 4 and state["invalid"] == 3 and state["queries"] == []
    assert state["stop_reason"] == "max_generations"
    check_invariants(state, config)


def test_bad_selections_are_bounded_and_reported(retriever) -> None:
    policy = ScriptedClient([query("Rukul engine"), done("[1, 9, 2, 3, 4]")])
    state = S3Searcher(policy, retriever, SearchConfig(search_k=8, max_select=3)).search(Q)
    assert state["blocks"][1]["selected"] == [1, 2, 3]
    assert any("out of range" in p for p in state["problems"])
    assert any("over max_select=3" in p for p in state["problems"])


def test_selection_before_any_search_applies_to_the_initial_block(retriever) -> None:
    state = S3Searcher(ScriptedClient([done("[2]")]), retriever).search(Q)
    assert state["blocks"][0]["selected"] == [2]
    assert [p.id for p in state["context"]] == [state["blocks"][0]["passages"][1].id]


def test_stop_string_is_restored(retriever) -> None:
    # The client cuts at "</query>" like a server with stop strings; the graph puts the tag back.
    policy = ScriptedClient([query("Rukul engine") + " trailing text the model would have rambled", done()])
    state = S3Searcher(policy, retriever).search(Q)
    assert state["outputs"][0].endswith('"Rukul engine"}</query>')
    assert state["queries"] == ["Rukul engine"]


def test_async_stream_and_batch(retriever) -> None:
    searcher = S3Searcher(ScriptedClient(lambda m: query("x") if len(m) == 1 else done("[1]")), retriever)
    nodes = [next(iter(step)) for step in searcher.stream(Q)]
    assert nodes == ["initial_retrieval", "policy", "select", "retrieve", "policy", "select", "stop"]
    questions = [f"question {i}" for i in range(12)]
    states = searcher.batch(questions, concurrency=4)
    assert [s["question"] for s in states] == [q + "?" for q in questions]
    assert all(len(s["queries"]) == 1 and s["stop_reason"] == "complete" for s in states)
    async def collect():
        return [step async for step in searcher.astream(Q)]
    assert len(asyncio.run(collect())) == 7


def test_works_as_a_subgraph(retriever) -> None:
    class Outer(TypedDict, total=False):
        question: str
        context: list[Passage]
        answer: str

    def answer(state: Outer) -> dict:
        return {"answer": state["context"][0].title}

    outer = StateGraph(Outer, context_schema=SearchContext)
    outer.add_node("searcher", build_search_graph())
    outer.add_node("answer", answer)
    outer.add_edge(START, "searcher")
    outer.add_edge("searcher", "answer")
    outer.add_edge("answer", END)
    app = outer.compile()
    ctx = SearchContext(policy=ScriptedClient([query("Ketroul currency"), done("[1]")]), retriever=retriever)
    result = app.invoke({"question": "What is the currency of Ketroul?"}, context=ctx)
    assert result["answer"] == result["context"][0].title and result["context"]


def test_nodes_return_only_what_changed(retriever) -> None:
    policy = ScriptedClient(lambda m: query("Rukul engine", "[2]") if len(m) == 1 else done("[1]"))
    searcher = S3Searcher(policy, retriever)
    updates = [step for step in searcher.stream(Q)]
    start = updates[0]["initial_retrieval"]                  # a fresh episode: plain lists, no Overwrite wrappers
    assert isinstance(start["blocks"], list) and start["outputs"] == [] and start["invalid"] == 0
    policy = [u["policy"] for u in updates if "policy" in u]
    assert [p["outputs"] for p in policy] == [[query("Rukul engine", "[2]")], [done("[1]")]]
    assert all(len(p["messages"]) == 1 and isinstance(p["pending"], Action) for p in policy)
    retrieve = next(u["retrieve"] for u in updates if "retrieve" in u)
    assert retrieve["queries"] == ["Rukul engine"] and [b["turn"] for b in retrieve["blocks"]] == [1]
    # A selection replaces its block (by turn) instead of appending one.
    select = [u["select"] for u in updates if "select" in u]
    assert [[b["turn"] for b in s["blocks"]] for s in select] == [[0], [1]]
    final = searcher.search(Q)
    assert [b["selected"] for b in final["blocks"]] == [[2], [1]]


def test_a_reused_thread_starts_a_fresh_episode(retriever) -> None:
    graph = build_search_graph(checkpointer=InMemorySaver())
    policy = ScriptedClient(lambda m: query("x") if len(m) == 1 else done("[1]"))
    ctx, config = SearchContext(policy=policy, retriever=retriever), {"configurable": {"thread_id": "t"}}
    first = graph.invoke({"question": "first question"}, config, context=ctx)
    second = graph.invoke({"question": "second question"}, config, context=ctx)
    assert first["queries"] == second["queries"] == ["x"] and second["invalid"] == 0
    assert len(second["blocks"]) == 2 and second["blocks"][0]["query"] == "second question?"
    assert len(second["outputs"]) == 2 and len(second["messages"]) == 4


def test_transcript_keeps_the_model_text_apart(retriever) -> None:
    state = S3Searcher(ScriptedClient([query("Rukul engine"), done("[1]")]), retriever).search(Q)
    assert "".join(s["text"] for s in state["transcript"] if s["source"] == "model") == "".join(state["outputs"])
    assert state["transcript"][0]["source"] == "prompt" and Q in state["transcript"][0]["text"]


def test_graph_drawing_is_stable() -> None:
    mermaid = build_search_graph().get_graph().draw_mermaid()
    for edge in ("__start__ --> initial_retrieval", "initial_retrieval --> policy", "policy --> select",
                 "select -.-> retrieve", "select -.-> feedback", "select -.-> stop", "retrieve --> policy",
                 "feedback --> policy", "stop --> __end__"):
        assert edge in mermaid


def test_missing_context_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="context=SearchContext"):
        build_search_graph().invoke({"question": "q"})


def test_client_protocols_match_their_use(retriever) -> None:
    """Every client offers what callers use (chat, achat, complete, acomplete, close); an async-only one is told
    to run async, with a message, not an AttributeError."""
    from s3_agents.llm import AsyncChatClient, ChatClient, LlamaCppClient, OpenAICompatClient, TransformersClient

    scripted = ScriptedClient(lambda messages: "<search_complete>True</search_complete>")
    assert isinstance(scripted, ChatClient) and isinstance(OpenAICompatClient("http://127.0.0.1:9/v1", "m"), ChatClient)
    for cls in (LlamaCppClient, TransformersClient):
        assert all(callable(getattr(cls, name, None)) for name in ("chat", "achat", "complete", "acomplete", "close"))

    class AsyncOnly:
        model = "async-only"

        async def achat(self, messages, **kwargs):
            return await scripted.achat(messages, **kwargs)

    assert isinstance(AsyncOnly(), AsyncChatClient) and not isinstance(AsyncOnly(), ChatClient)
    with pytest.raises(TypeError, match="asynchronously only: run the searcher with asearch"):
        S3Searcher(AsyncOnly(), retriever).search(Q)
    assert len(asyncio.run(S3Searcher(AsyncOnly(), retriever, SearchConfig(max_turns=1)).asearch(Q))["outputs"]) == 1
