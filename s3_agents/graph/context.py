"""Assemble the generator's context from the searcher's blocks (s3 spec section 1.5, kept structured)."""

from __future__ import annotations

from collections.abc import Sequence

from s3_agents.config import SearchConfig
from s3_agents.graph.state import Block
from s3_agents.types import Passage

__all__ = ["assemble_context"]


def assemble_context(blocks: Sequence[Block], config: SearchConfig) -> list[Passage]:
    """The passages handed to the generator, in order.

    As in the reference: first the documents the searcher selected, block by block in selection
    order; then every block it never selected from (the initial naive-RAG block if
    ``config.keep_initial``, search blocks if ``config.keep_unselected``). A block selected from
    with an empty list contributes nothing. Duplicates (same id, or same title and text) are
    dropped, and ``config.max_context_docs`` caps the total. With ``config.fill_context``, what the
    cap leaves is filled from the initial naive-RAG block in rank order, so the generator never gets fewer
    documents than naive RAG would give it. Documents are kept as retrieved (ids, titles with any
    characters, scores), never re-parsed from text.
    """
    chosen: list[Passage] = []
    unselected: list[Passage] = []
    for block in blocks:
        if block["selected"] is not None:
            chosen.extend(block["passages"][i - 1] for i in block["selected"])
        elif block["turn"] == 0 and config.keep_initial or block["turn"] > 0 and config.keep_unselected:
            unselected.extend(block["passages"])
    fill = [p for block in blocks if block["turn"] == 0 for p in block["passages"]] if config.fill_context else []
    out: list[Passage] = []
    seen_ids: set[str] = set()
    seen_text: set[tuple[str, str]] = set()
    for passage in chosen + unselected + fill:
        key = (passage.title, passage.text)
        if passage.id in seen_ids or key in seen_text:
            continue
        seen_ids.add(passage.id)
        seen_text.add(key)
        out.append(passage)
    return out[:config.max_context_docs] if config.max_context_docs else out
