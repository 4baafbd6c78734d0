"""Traces: what a method did for one question, step by step, kept with its result for the trajectory browser.

A trace is a list of steps, each a plain dict (it goes into ``results.jsonl`` under ``extra``):

* ``{"type": "retrieval", "query": str, "passages": [id, ...], "selected": [id, ...] | None}``: a search and
  what came back (``selected``: what the searcher kept from it; ``None`` when nothing selects);
* ``{"type": "generation", "output": str, "problem": str | None}``: what a model wrote (``problem``: why the
  output broke the tag protocol, for an invalid action).

Passages are stored once per answer, by id (``{"id": [title, text]}``), and steps refer to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from s3_agents.protocol import parse_action
from s3_agents.types import Passage

__all__ = ["Trace", "s3_trace"]


class Trace:
    """A trace being recorded.

    Example:
        >>> trace = Trace()
        >>> trace.retrieval("capital of Ketroul", [Passage(id="7", title="Ketroul", text="...")])
        >>> trace.generation("<query>oops", problem="no closing tag")
        >>> trace.extra()["trace"][1]
        {'type': 'generation', 'output': '<query>oops', 'problem': 'no closing tag'}
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.passages: dict[str, list[str]] = {}

    def retrieval(self, query: str, passages: Sequence[Passage], selected: Sequence[str] | None = None) -> None:
        """A search for ``query`` that returned ``passages`` (``selected``: the ids the searcher kept)."""
        for p in passages:
            self.passages.setdefault(p.id, [p.title, p.text])
        self.steps.append({"type": "retrieval", "query": query, "passages": [p.id for p in passages],
                           "selected": None if selected is None else list(selected)})

    def generation(self, output: str, problem: str | None = None) -> None:
        """A model's output (``problem``: why it was an invalid action)."""
        self.steps.append({"type": "generation", "output": output, "problem": problem})

    def extra(self, context: Sequence[Passage] = ()) -> dict[str, Any]:
        """The ``extra`` fields of a result: ``trace`` and ``passages`` (the context's passages included)."""
        for p in context:
            self.passages.setdefault(p.id, [p.title, p.text])
        return {"trace": self.steps, "passages": self.passages}


def s3_trace(state: Mapping[str, Any]) -> Trace:
    """The trace of an s3 episode, from the searcher's final state.

    The initial retrieval, then each generation (its raw output; the protocol problem of an invalid one)
    followed by the search it asked for, each block with the passages the searcher selected from it.
    Every output is parsed again with the graph's own parser, so the steps are the ones the graph took.
    """
    trace = Trace()
    blocks = sorted(state.get("blocks", []), key=lambda b: b["turn"])

    def add(block: Mapping[str, Any]) -> None:
        passages = block["passages"]
        chosen = block["selected"]
        selected = None if chosen is None else [passages[i - 1].id for i in chosen if 1 <= i <= len(passages)]
        trace.retrieval(block["query"] or state.get("question", ""), passages, selected)

    searches = iter(b for b in blocks if b["turn"] >= 1)
    if blocks and blocks[0]["turn"] == 0:
        add(blocks[0])
    upcoming = next(searches, None)
    for output in state.get("outputs", []):
        action = parse_action(output)
        trace.generation(output, action.problem if action.kind == "invalid" else None)
        if action.kind == "search" and upcoming is not None and upcoming["query"] == (action.query or ""):
            add(upcoming)
            upcoming = next(searches, None)
    return trace
