"""State and run-time context of the search graph."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypedDict

from s3_agents.config import SearchConfig
from s3_agents.llm.base import AsyncChatClient, Message
from s3_agents.protocol import Action
from s3_agents.retrievers.base import Retriever
from s3_agents.types import Passage

__all__ = ["Block", "Segment", "SearchInput", "SearchState", "SearchContext", "StopReason", "merge_blocks"]

StopReason = Literal["complete", "max_turns", "max_generations", "context_full"]


class Block(TypedDict):
    """One ``<information>`` block: the initial retrieval (turn 0) or a search (turn >= 1)."""

    turn: int
    query: str
    passages: list[Passage]
    selected: list[int] | None
    """1-based numbers the searcher marked important; ``None`` if it never selected from this block."""


class Segment(TypedDict):
    """A piece of the transcript: the prompt, text the model wrote, or text the environment inserted."""

    source: Literal["prompt", "model", "env"]
    text: str


def merge_blocks(blocks: list[Block], update: list[Block]) -> list[Block]:
    """Reducer of ``blocks``: a block with a known ``turn`` replaces it (a selection), a new one is appended.

    Example:
        >>> old = [{"turn": 0, "query": "q", "passages": [], "selected": None}]
        >>> [b["selected"] for b in merge_blocks(old, [{**old[0], "selected": [1]}])]
        [[1]]
    """
    merged = list(blocks)
    where = {block["turn"]: i for i, block in enumerate(merged)}
    for block in update:
        if block["turn"] in where:
            merged[where[block["turn"]]] = block
        else:
            where[block["turn"]] = len(merged)
            merged.append(block)
    return merged


class SearchInput(TypedDict):
    """What a caller passes: the question."""

    question: str


class SearchState(TypedDict, total=False):
    """The episode as it unfolds; the final state is the search result.

    List fields have reducers, so a node returns only what it adds (``blocks`` replaces a block of the
    same turn); ``len(queries)`` is the number of searches and ``len(outputs)`` of generations.

    Keys:
        question: The question (normalised: stripped, ending in ``?``).
        blocks: Every ``<information>`` block, initial one first, with what was selected from it.
        queries: Queries that were run, in order (never more than ``max_turns``).
        outputs: The searcher's raw output, one per generation (never more than ``max_turns + 1``).
        messages: The chat messages sent to the searcher (observations arrive as user messages).
        transcript: Prompt, model and environment segments in order (what the searcher wrote, and what
            was inserted around it). Training builds its own token stream with the chat template.
        pending: The searcher's last parsed :class:`~s3_agents.protocol.actions.Action`.
        invalid: Outputs that broke the protocol (each got the feedback text).
        problems: Why each invalid output was invalid, and dropped selections.
        stop_reason: ``"complete"`` (searcher stopped), ``"max_turns"`` (asked for a search past the
            limit), ``"max_generations"`` (generation budget spent), or ``"context_full"`` (the episode outgrew
            the searcher's context window; the context is what was selected until then).
        context: The final context for the generator (selected passages with ids and scores).
    """

    question: str
    blocks: Annotated[list[Block], merge_blocks]
    queries: Annotated[list[str], operator.add]
    outputs: Annotated[list[str], operator.add]
    messages: Annotated[list[Message], operator.add]
    transcript: Annotated[list[Segment], operator.add]
    pending: Action
    invalid: Annotated[int, operator.add]
    problems: Annotated[list[str], operator.add]
    stop_reason: StopReason
    context: list[Passage]


@dataclass
class SearchContext:
    """Run-time dependencies of the graph, passed as ``graph.invoke(state, context=...)``.

    Attributes:
        policy: The searcher LLM.
        retriever: Where queries go.
        config: Loop settings (8-3-3 by default).
    """

    policy: AsyncChatClient
    retriever: Retriever
    config: SearchConfig = field(default_factory=SearchConfig)
