"""Nodes of the search graph. Each has a sync and an async form; both return only what changed (the state's
reducers append or replace)."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import get_runtime
from langgraph.types import Overwrite

from s3_agents.config import SearchConfig
from s3_agents.errors import ContextWindowError
from s3_agents.graph.context import assemble_context
from s3_agents.graph.state import Block, SearchContext, SearchState, Segment
from s3_agents.llm.base import Completion
from s3_agents.prompts import normalize_question
from s3_agents.protocol import (
    INVALID_ACTION_FEEDBACK,
    REFERENCE_FEEDBACK,
    Action,
    action_grammar,
    candidate_spans,
    format_information,
    format_observation,
    parse_action,
    parse_selection,
    reference_output,
    searcher_prompt,
)
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
def _start(state: SearchState, question: str, passages: list[Passage], ctx: SearchContext) -> dict[str, Any]:
    config = ctx.config
    prompt = searcher_prompt(question, format_information(passages), max_select=config.max_select,
                             max_turns=config.max_turns, bm25=config.bm25_hint)
    block: Block = {"turn": 0, "query": question, "passages": passages, "selected": None}
    start = {"question": question, "blocks": [block], "queries": [], "outputs": [], "problems": [],
             "messages": [{"role": "user", "content": prompt}],
             "transcript": [Segment(source="prompt", text=prompt)], "invalid": 0}
    if not state.get("blocks"):
        return start
    # A reused checkpointer thread: the new episode replaces the last one's lists instead of adding to them.
    return {key: value if key == "question" else Overwrite(value) for key, value in start.items()}


def initial_retrieval(state: SearchState) -> dict[str, Any]:
    """Naive RAG for the raw question: the first ``initial_k`` documents go into the prompt."""
    ctx, question = _ctx(), normalize_question(state["question"])
    k = ctx.config.initial_k
    passages = ctx.retriever.search([question], k)[0] if k else []
    return _start(state, question, passages, ctx)


async def ainitial_retrieval(state: SearchState) -> dict[str, Any]:
    ctx, question = _ctx(), normalize_question(state["question"])
    k = ctx.config.initial_k
    passages = (await ctx.retriever.asearch([question], k))[0] if k else []
    return _start(state, question, passages, ctx)


# -- the searcher's turn ---------------------------------------------------------------------
def _after_policy(completion: Completion, config: SearchConfig) -> dict[str, Any]:
    text = completion.text
    if config.prompt_format == "reference":
        text = reference_output(text)
    else:
        # Generation stops at </query> (a stop string, not returned by most servers): put it back.
        stopped = completion.stop == "</query>" or completion.finish_reason == "stop"
        if "<query>" in text and "</query>" not in text and stopped:
            text += "</query>"
    return {
        "outputs": [text],
        "messages": [{"role": "assistant", "content": text}],
        "transcript": [Segment(source="model", text=text)],
        "pending": parse_action(text),
    }


def _generation_kwargs(config: SearchConfig, state: SearchState) -> dict[str, Any]:
    # The reference format has no stop strings (as the reference): the output is cut after its first </query>.
    stop = None if config.prompt_format == "reference" else _STOP
    kwargs: dict[str, Any] = {"max_tokens": config.max_new_tokens, "temperature": config.temperature, "stop": stop}
    if config.query_spans:
        shown = [(p.title or "", p.text) for block in state.get("blocks", []) for p in block["passages"]]
        kwargs["grammar"] = action_grammar(config, spans=candidate_spans(state["question"], shown))
    elif config.constrained:
        kwargs["grammar"] = action_grammar(config)
    return kwargs


def policy_turn(state: SearchState) -> dict[str, Any]:
    """The searcher writes: a selection, then stop or a query (under the action grammar if ``constrained``)."""
    ctx = _ctx()
    if not callable(getattr(ctx.policy, "chat", None)):  # a sync run needs chat, nothing more
        raise TypeError(f"{type(ctx.policy).__name__} generates asynchronously only: run the searcher with asearch, "
                        "abatch or astream (the graph's ainvoke / astream)")
    try:
        completion = ctx.policy.chat(state["messages"], **_generation_kwargs(ctx.config, state))
    except ContextWindowError as err:
        return _window_full(state, err)
    return _after_policy(completion, ctx.config)


async def apolicy_turn(state: SearchState) -> dict[str, Any]:
    ctx = _ctx()
    try:
        completion = await ctx.policy.achat(state["messages"], **_generation_kwargs(ctx.config, state))
    except ContextWindowError as err:
        return _window_full(state, err)
    return _after_policy(completion, ctx.config)


def _window_full(state: SearchState, err: ContextWindowError) -> dict[str, Any]:
    """The episode outgrew the searcher's window: it ends with what was selected so far (the last block unread)."""
    return {"pending": Action(kind="context_full", problem=str(err)),
            "problems": [f"generation {len(state['outputs']) + 1}: the searcher's context window is full ({err})"]}


# -- selection -------------------------------------------------------------------------------
def select(state: SearchState) -> dict[str, Any]:
    """Apply ``<important_info>`` to the latest block (the one the searcher read last)."""
    selection = state["pending"].selection
    if selection is None:
        return {}
    ctx, latest, generation = _ctx(), state["blocks"][-1], len(state["outputs"])
    if latest["selected"] is not None:
        return {"problems": [f"generation {generation}: a second selection from block {latest['turn']} ignored"]}
    picked = parse_selection(selection, len(latest["passages"]), ctx.config.max_select)
    problems = []
    if picked.out_of_range:
        problems.append(f"generation {generation}: {picked.out_of_range} document number(s) out of range")
    if picked.over_limit:
        problems.append(f"generation {generation}: {picked.over_limit} selection(s) over "
                        f"max_select={ctx.config.max_select} dropped")
    return {"blocks": [{**latest, "selected": picked.ids}], "problems": problems}


def route(state: SearchState) -> Literal["retrieve", "feedback", "stop"]:
    """Where to go after a turn: run the query, answer an invalid action, or stop."""
    config = _ctx().config
    kind = state["pending"].kind
    if kind in ("complete", "context_full"):
        return "stop"
    if len(state["outputs"]) >= config.max_turns + 1:
        return "stop"
    if kind == "search":
        return "retrieve" if len(state["queries"]) < config.max_turns else "stop"
    return "feedback"


def feedback(state: SearchState) -> dict[str, Any]:
    """The environment answers an invalid action with the protocol reminder."""
    problem = state["pending"].problem or "invalid action"
    text = REFERENCE_FEEDBACK if _ctx().config.prompt_format == "reference" else INVALID_ACTION_FEEDBACK
    return {
        "invalid": 1,
        "problems": [f"generation {len(state['outputs'])}: invalid action ({problem})"],
        "messages": [{"role": "user", "content": text}],
        "transcript": [Segment(source="env", text=text)],
    }


# -- retrieval -------------------------------------------------------------------------------
def _observe(state: SearchState, query: str, passages: list[Passage]) -> dict[str, Any]:
    observation = format_observation(passages, _ctx().config.prompt_format)
    block: Block = {"turn": len(state["queries"]) + 1, "query": query, "passages": passages, "selected": None}
    return {
        "blocks": [block],
        "queries": [query],
        "messages": [{"role": "user", "content": observation}],
        "transcript": [Segment(source="env", text=observation)],
    }


def _shown(state: SearchState) -> set[str]:
    """Ids of the documents the episode has shown, when ``config.new_results`` hides them from later searches."""
    return {p.id for block in state["blocks"] for p in block["passages"]} if _ctx().config.new_results else set()


def _new(passages: list[Passage], shown: set[str], k: int) -> list[Passage]:
    return [p for p in passages if p.id not in shown][:k]


def retrieve(state: SearchState) -> dict[str, Any]:
    """Run the searcher's query and insert the numbered results (with ``config.new_results``, only documents not
    shown before: ``search_k`` plus the number shown are retrieved, the shown ones dropped)."""
    ctx, query, shown = _ctx(), state["pending"].query or "", _shown(state)
    passages = ctx.retriever.search([query], ctx.config.search_k + len(shown))[0]
    return _observe(state, query, _new(passages, shown, ctx.config.search_k))


async def aretrieve(state: SearchState) -> dict[str, Any]:
    ctx, query, shown = _ctx(), state["pending"].query or "", _shown(state)
    passages = (await ctx.retriever.asearch([query], ctx.config.search_k + len(shown)))[0]
    return _observe(state, query, _new(passages, shown, ctx.config.search_k))


# -- stop ------------------------------------------------------------------------------------
def stop(state: SearchState) -> dict[str, Any]:
    """End the episode and assemble the generator's context."""
    config = _ctx().config
    kind = state["pending"].kind
    if kind in ("complete", "context_full"):
        reason = kind
    elif kind == "search" and len(state["queries"]) >= config.max_turns:
        reason = "max_turns"
    else:
        reason = "max_generations"
    return {"stop_reason": reason, "context": assemble_context(state["blocks"], config)}
