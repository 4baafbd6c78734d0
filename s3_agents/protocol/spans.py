"""Queries a searcher has read: the capitalised spans of the documents shown so far.

On real multi-hop questions the second hop's query is usually the bridge entity, a name written in a document
the searcher has already read and absent from the question (docs/training.md, "What the query is worth").
:func:`candidate_spans` lists those names; ``SearchConfig(query_spans=True)`` restricts every query to one of
them through the action grammar (:func:`~s3_agents.protocol.grammar.action_grammar`), so that choosing the query
is choosing among what was read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["candidate_spans", "MAX_SPANS"]

MAX_SPANS = 200
"""Most candidates listed for one turn (in reading order)."""

_SPAN = re.compile(r"\b[A-Z0-9][\w'&.-]*(?:\s+(?:of|the|de|and|in|for|von|van|la|le|da|del|di)?\s*[A-Z0-9][\w'&.-]*)*")
_REFUSED = re.compile(r'["\\<>{}\x00-\x1f]')      # characters the query grammar does not allow
_WORD = re.compile(r"\S+")
# A word ending in "." ends a sentence, so a span, unless it is an initial ("F."), holds a dot inside ("U.S.") or
# is one of these abbreviations ("St. Louis", "Dr. Francke").
_ABBREVIATIONS = frozenset({"st", "dr", "mr", "mrs", "ms", "jr", "sr", "mt", "ft", "gen", "col", "lt", "capt", "sgt",
                            "rev", "prof", "no", "co", "inc", "ltd", "vs"})


def _sentences(span: str) -> list[str]:
    """``span`` cut after each word that ends a sentence: "Gian Carlo Menotti. It" gives "Gian Carlo Menotti"
    and "It"."""
    pieces, start = [], 0
    for word in _WORD.finditer(span):
        stem = word.group()[:-1]
        if (word.group().endswith(".") and len(stem) > 1 and "." not in stem
                and stem.lower() not in _ABBREVIATIONS):
            pieces.append(span[start:word.end()])
            start = word.end()
    return [*pieces, span[start:]]


def candidate_spans(question: str, docs: Sequence[tuple[str, str]], *, limit: int = MAX_SPANS,
                    max_chars: int | None = None) -> list[str]:
    """Capitalised runs of words in the documents' text, each within one sentence, that the question does not
    contain and that are not a shown title, in reading order, each once.

    Args:
        question: The question (a span inside it, ignoring case, is left out: the initial retrieval asked it).
        docs: ``(title, text)`` of each document shown, in the order shown.
        limit: Most spans returned.
        max_chars: Longest span kept (``None``: any length).

    Returns:
        At most ``limit`` spans of at least 3 characters, none with a character the query grammar refuses.

    Example:
        >>> text = "Big is a 1988 film with Tom Hanks, directed by Penny Marshall. Critics liked it"
        >>> candidate_spans("Who directed the film about Tom Hanks?", [("Big", text)])
        ['1988', 'Penny Marshall', 'Critics']
    """
    lowered, titles, out = question.lower(), {t.lower() for t, _ in docs}, []
    for _, text in docs:
        for span in (piece for run in _SPAN.findall(text) for piece in _sentences(run)):
            span = span.strip(" .,'\n\t")
            if (len(span) >= 3 and span.lower() not in lowered and span.lower() not in titles and span not in out
                    and not _REFUSED.search(span) and (max_chars is None or len(span) <= max_chars)):
                out.append(span)
                if len(out) == limit:
                    return out
    return out
