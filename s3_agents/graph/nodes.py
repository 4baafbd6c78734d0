"""Nodes of the search graph. Each has a sync and an async form; both return partial state updates."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import get_runtime

from s3_agents.config import SearchConfig
from s3_agents.grammar import action_grammar
from s3_agents.graph.context import assemble_context
from s3_agents.graph.protocol import INVALID_ACTION_FEEDBACK, format_information, parse_action, parse_selection
from s3_agents.graph.state import Block, SearchContext, SearchState, Segment
from s3_agents.llm.base import Completion
from s3_agents.prompts import normalize_question, searcher_prompt
from s3_agents.types import Passage

__all__ = [
    "initial_retrieval", "ainitial_retrieval", "policy_turn", "apolicy_turn", "select", "feedback",
    "retrieve", "aretrieve", "stop", "route",
]

_STOP = ["</query>"]


def _ctx() -> SearchContext:
    context = get_runtime(SearchContext).context
    if not isinstance(context, SearchContext):
        raise TypeError("the search graph needs its dependencies: graph.invoke({'question': ...}, "
                        "context=SearchContext(policy=..., retriever=...)); or use S3Searcher")
    return context


# -- initial retrieval -----------------------------------------------------------------------
def _start(question: str, passages: list[Passage], ctx: SearchContext) -> dict[str, Any]:
    config = ctx.config
    prompt = searcher_prompt(question, format_information(passages), max_select=config.max_select,
                             max_turns=config.max_turns, bm25=config.bm25_hint)
    block: Block = {"turn": 0, "query": question, "passages": passages, "selected": None}
    return {"question": question, "blocks": [block], "queries": [], "outputs": [], "problems": [],
            "messages": [{"role": "user", "content": prompt}],
            "transcript": [Segment(source="prompt", text=prompt)],
            "searches": 0, "generations": 0, "invalid": 0}


def initial_retrieval(state: SearchState) -> dict[str, Any]:
    """Naive RAG for the raw question: the first ``initial_k`` documents go into the prompt."""
    ctx, question = _ctx(), normalize_question(state["question"])
    k = ctx.config.initial_k
    passages = ctx.retriever.search([question], k)[0] if k else []
    return _start(question, passages, ctx)


async def ainitial_retrieval(state: SearchState) -> dict[str, Any]:
    ctx, question = _ctx(), normalize_question(state["question"])
    k = ctx.config.initial_k
    passages = (await ctx.retriever.asearch([question], k))[0] if k else []
    return _start(question, passages, ctx)


# -- the searcher's turn ---------------------------------------------------------------------
def _after_policy(state: SearchState, completion: Completion) -> dict[str, Any]:
    text = completion.text
    # Generation stops at </query> (a stop string, not returned by most servers): put it back.
    stopped = completion.stop == "</query>" or completion.finish_reason == "stop"
    if "<query>" in text and "</query>" not in text and stopped:
        text += "</query>"
    action = parse_action(text)
    return {
        "outputs": [*state["outputs"], text],
        "messages": [*state["messages"], {"role": "assistant", "content": text}],
        "transcript": [*state["transcript"], Segment(source="model", text=text)],
        "generations": state["generations"] + 1,
        "pending": {"kind": action.kind, "query": action.query, "selection": action.selection,
                    "problem": action.problem},
    }


def _generation_kwargs(config: SearchConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_tokens": config.max_new_tokens, "temperature": config.temperature, "stop": _STOP}
    if config.constrained:
        kwargs["grammar"] = action_grammar(config)
    return kwargs


def policy_turn(state: SearchState) -> dict[str, Any]:
    """The searcher writes: a selection, then stop or a query (under the action grammar if ``constrained``)."""
    ctx = _ctx()
    if not callable(getattr(ctx.policy, "chat", None)):  # a sync run needs chat, nothing more
        raise TypeError(f"{type(ctx.policy).__name__} generates asynchronously only: run the searcher with asearch, "
                        "abatch or astream (the graph's ainvoke / astream)")
    completion = ctx.policy.chat(state["messages"], **_generation_kwargs(ctx.config))
    return _after_policy(state, completion)


async def apolicy_turn(state: SearchState) -> dict[str, Any]:
    ctx = _ctx()
    completion = await ctx.policy.achat(state["messages"], **_generation_kwargs(ctx.config))
    return _after_policy(state, completion)


# -- selection -------------------------------------------------------------------------------
def select(state: SearchState) -> dict[str, Any]:
    """Apply ``<important_info>`` to the latest block (the one the searcher read last)."""
    selection = state["pending"].get("selection")
    if selection is None:
        return {}
    ctx, blocks = _ctx(), list(state["blocks"])
    latest = blocks[-1]
    problems = list(state["problems"])
    if latest["selected"] is not None:
        problems.append(f"generation {state['generations']}: a second selection from block {len(blocks) - 1} ignored")
        return {"problems": problems}
    picked = parse_selection(selection, len(latest["passages"]), ctx.config.max_select)
    if picked.out_of_range:
        problems.append(f"generation {state['generations']}: {picked.out_of_range} document number(s) out of range")
    if picked.over_limit:
        problems.append(f"generation {state['generations']}: {picked.over_limit} selection(s) over "
                        f"max_select={ctx.config.max_select} dropped")
    blocks[-1] = {**latest, "selected": picked.ids}
    return {"blocks": blocks, "problems": problems}


def route(state: SearchState) -> Literal["retrieve", "feedback", "stop"]:
    """Where to go after a turn: run the query, answer an invalid action, or stop."""
    config = _ctx().config
    kind = state["pending"]["kind"]
    if kind == "complete":
        return "stop"
    if state["generations"] >= config.max_turns + 1:
        return "stop"
    if kind == "search":
        return "retrieve" if state["searches"] < config.max_turns else "stop"
    return "feedback"


def feedback(state: SearchState) -> dict[str, Any]:
    """The environment answers an invalid action with the protocol reminder."""
    problem = state["pending"].get("problem") or "invalid action"
    return {
        "invalid": state["invalid"] + 1,
        "problems": [*state["problems"], f"generation {state['generations']}: invalid action ({problem})"],
        "messages": [*state["messages"], {"role": "user", "content": INVALID_ACTION_FEEDBACK}],
        "transcript": [*state["transcript"], Segment(source="env", text=INVALID_ACTION_FEEDBACK)],
    }


# -- retrieval -------------------------------------------------------------------------------
def _observe(state: SearchState, query: str, passages: list[Passage]) -> dict[str, Any]:
    observation = format_information(passages)
    block: Block = {"turn": state["searches"] + 1, "query": query, "passages": passages, "selected": None}
    return {
        "blocks": [*state["blocks"], block],
        "queries": [*state["queries"], query],
        "searches": state["searches"] + 1,
        "messages": [*state["messages"], {"role": "user", "content": observation}],
        "transcript": [*state["transcript"], Segment(source="env", text=observation)],
    }


def retrieve(state: SearchState) -> dict[str, Any]:
    """Run the searcher's query and insert the numbered results."""
    ctx, query = _ctx(), state["pending"]["query"] or ""
    return _observe(state, query, ctx.retriever.search([query], ctx.config.search_k)[0])


async def aretrieve(state: SearchState) -> dict[str, Any]:
    ctx, query = _ctx(), state["pending"]["query"] or ""
    return _observe(state, query, (await ctx.retriever.asearch([query], ctx.config.search_k))[0])


# -- stop ------------------------------------------------------------------------------------
def stop(state: SearchState) -> dict[str, Any]:
    """End the episode and assemble the generator's context."""
    config = _ctx().config
    kind = state["pending"]["kind"]
    if kind == "complete":
        reason = "complete"
    elif kind == "search" and state["searches"] >= config.max_turns:
        reason = "max_turns"
    else:
        reason = "max_generations"
    return {"stop_reason": reason, "context": assemble_context(state["blocks"], config)}
