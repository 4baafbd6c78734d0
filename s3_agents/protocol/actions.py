"""The s3 tag protocol: what the searcher writes and what the environment inserts.

The searcher writes, in this order within a turn (each part optional):

* ``<important_info>[1, 4]</important_info>``: numbers of the useful documents of the most
  recent ``<information>`` block;
* ``<search_complete>True|False</search_complete>``: whether to stop;
* ``<query>{"query": "..."}</query>``: the next search (JSON, or raw text).

The environment inserts ``<information>Doc 1 (Title: "T") text ...</information>`` after a search,
or a fixed feedback text after an invalid action. Parsing follows the s3 reference (first match
of each tag, ``search_complete`` true wins over a query, raw text when the query is not JSON) with
its weak points fixed: an empty query is invalid, document numbers are bounded by the block's real
size instead of a hard-coded 1..8, and selections over the limit are cut and counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from s3_agents.types import Passage

__all__ = [
    "Action",
    "parse_action",
    "parse_selection",
    "Selection",
    "format_information",
    "parse_information",
    "INVALID_ACTION_FEEDBACK",
    "REFERENCE_FEEDBACK",
    "format_observation",
    "reference_output",
]

_COMPLETE = re.compile(r"<search_complete>(.*?)</search_complete>", re.S | re.I)
_QUERY = re.compile(r"<query>(.*?)</query>", re.S | re.I)
_IMPORTANT = re.compile(r"<important_info>(.*?)</important_info>", re.S | re.I)
_INT = re.compile(r"\d+")
_DOC = re.compile(r'^Doc (\d+) \(Title: "(.*?)"\) (.*)$', re.M)
_TRUE = {"true", "yes", "1", "y"}

INVALID_ACTION_FEEDBACK = (
    "Your previous output did not follow the protocol. To search, write a new query in JSON between "
    '<query> and </query>, e.g. <query>{"query": "..."}</query>. To stop, write '
    "<search_complete>True</search_complete>. Mark useful documents of the last results with "
    "<important_info>[1, 2]</important_info>."
)
"""Inserted after an invalid action (paraphrasing the reference's feedback)."""

REFERENCE_FEEDBACK = (
    "\nMy previous action is invalid. The information is not enough to answer the question; I will write a "
    "new search query between <query> and </query> in JSON format:\n<query>\n"
)
"""The feedback of the reference format: its shape is the reference's (inside the assistant turn, ending in an
opened ``<query>`` that the next output is expected to close); the wording is ours."""


def format_observation(passages: Sequence[Passage], prompt_format: str = "chat") -> str:
    """The text a search's results are inserted as: :func:`format_information` (chat), or the reference's
    ``\n\n<information>Doc i(Title: t) text\n...</information>\n\n`` (no space before the parenthesis, no
    quotes: its search formatter differs from its initial-results one).

    Example:
        >>> format_observation([Passage(id="1", title="Gritia", text="A city.")], "reference")
        '\n\n<information>Doc 1(Title: Gritia) A city.\n</information>\n\n'
    """
    if prompt_format == "reference":
        return "\n\n<information>" + "".join(f"Doc {i}(Title: {p.title}) {p.text}\n"
                                              for i, p in enumerate(passages, 1)) + "</information>\n\n"
    return format_information(passages)


def reference_output(text: str) -> str:
    """A reference-format output as the reference kept it: cut right after its first ``</query>``, and
    ``<query>\n`` put in front when that leaves a ``</query>`` without a ``<query>``.

    Example:
        >>> reference_output('{"query": "x"}</query> and more')
        '<query>\n{"query": "x"}</query>'
    """
    end = text.find("</query>")
    if end < 0:
        return text
    text = text[:end + len("</query>")]
    return text if "<query>" in text else "<query>\n" + text


@dataclass(frozen=True, slots=True)
class Action:
    """One parsed searcher turn.

    Attributes:
        kind: ``"search"`` (a query to run), ``"complete"`` (stop) or ``"invalid"``; or ``"context_full"``, set by
            the graph (never parsed) when the searcher could not write because its context window is full.
        query: The query text for ``"search"``.
        selection: The ``<important_info>`` text when present (ids are resolved against a block
            by :func:`parse_selection`), else ``None``.
        problem: Why the action is invalid, for logs and metrics.
    """

    kind: Literal["search", "complete", "invalid", "context_full"]
    query: str | None = None
    selection: str | None = None
    problem: str | None = None


def _query_text(raw: str) -> str:
    raw = raw.strip()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    if isinstance(value, dict) and "query" in value:
        query = value["query"]
        if isinstance(query, list):
            query = query[0] if query else ""
        return query.strip() if isinstance(query, str) else raw
    return raw


def parse_action(text: str) -> Action:
    """Parse one turn of searcher output; never raises.

    Args:
        text: The model's output for the turn.

    Returns:
        The action. Output with neither a true ``<search_complete>`` nor a ``<query>`` block, or
        with an empty query, is ``kind="invalid"``.

    Example:
        >>> parse_action('<important_info>[2]</important_info><search_complete>False</search_complete>'
        ...              '<query>{"query": "capital of Ketroul"}</query>')
        Action(kind='search', query='capital of Ketroul', selection='[2]', problem=None)
        >>> parse_action("I think the answer is Paris.").kind
        'invalid'
    """
    if not isinstance(text, str):
        return Action("invalid", problem=f"output is {type(text).__name__}, not text")
    important = _IMPORTANT.search(text)
    selection = important.group(1) if important else None
    complete = _COMPLETE.search(text)
    if complete and complete.group(1).strip().lower() in _TRUE:
        return Action("complete", selection=selection)
    query = _QUERY.search(text)
    if query is None:
        problem = "no <query> and no true <search_complete>"
        return Action("invalid", selection=selection, problem=problem)
    q = _query_text(query.group(1))
    if not q:
        return Action("invalid", selection=selection, problem="empty query")
    return Action("search", query=q, selection=selection)


@dataclass(frozen=True, slots=True)
class Selection:
    """Document numbers (1-based) picked from a block, and what was dropped."""

    ids: list[int] = field(default_factory=list)
    out_of_range: int = 0
    over_limit: int = 0


def parse_selection(text: str, n_docs: int, max_select: int) -> Selection:
    """Resolve an ``<important_info>`` text against a block of ``n_docs`` documents.

    Every integer in the text counts (``[1, 4]``, ``1,2``, ``Doc 1 and Doc 3`` all work), in order,
    without repeats. Numbers outside ``1..n_docs`` are dropped and counted; beyond ``max_select``
    ids the rest are cut and counted.

    Example:
        >>> parse_selection("[3, 1, 3, 9]", n_docs=8, max_select=3)
        Selection(ids=[3, 1], out_of_range=1, over_limit=0)
    """
    ids: list[int] = []
    out_of_range = 0
    for match in _INT.findall(text or ""):
        number = int(match)
        if not 1 <= number <= n_docs:
            out_of_range += 1
        elif number not in ids:
            ids.append(number)
    over = max(0, len(ids) - max_select)
    return Selection(ids[:max_select], out_of_range, over)


def format_information(passages: Sequence[Passage]) -> str:
    """The ``<information>`` block the searcher reads: ``Doc i (Title: "T") text`` per line."""
    lines = [f'Doc {i} (Title: "{p.title}") {p.text}' for i, p in enumerate(passages, 1)]
    return "<information>\n" + "\n".join(lines) + "\n</information>"


def parse_information(text: str) -> list[tuple[int, str, str]]:
    """The documents :func:`format_information` wrote into ``text``: ``(number, title, text)`` for each
    ``Doc i (Title: "T") text`` line, in order; other lines are skipped.

    Example:
        >>> parse_information(format_information([Passage(id="p1", title="Gritia", text="Gritia is a city.")]))
        [(1, 'Gritia', 'Gritia is a city.')]
    """
    return [(int(number), title, body) for number, title, body in _DOC.findall(text)]
