"""A grammar of the searcher's actions, for constrained decoding.

Small models (SmolLM2-135M) rarely write the tag protocol unaided: most of their turns are invalid
actions. Under :func:`action_grammar` every turn is one of

* ``<important_info>[2, 5]</important_info>`` (optional) then ``<search_complete>True</search_complete>``;
* ``<important_info>[...]</important_info>`` (optional), ``<search_complete>False</search_complete>`` and
  ``<query>{"query": "..."}</query>``.

The grammar is GBNF, the format of llama.cpp's ``grammar`` field; vLLM's structured outputs (xgrammar)
and llguidance read it too, so one text serves every backend. Set ``SearchConfig(constrained=True)``
(``--constrained`` on the CLI) and the search graph passes it to the policy client on every turn. With
``spans`` (``SearchConfig(query_spans=True)``) the query is one of a list of strings instead of any text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

from s3_agents.config import SearchConfig

__all__ = ["action_grammar"]


@functools.cache
def _grammar(n_docs: int, max_select: int, max_query_chars: int) -> str:
    ids = " | ".join(f'"{i}"' for i in range(1, n_docs + 1))
    more_ids = f'(", " id){{0,{max_select - 1}}}' if max_select > 1 else ""
    return "\n".join([
        "root ::= select? (done | more)",
        f'select ::= "<important_info>[" (id {more_ids})? "]</important_info>\\n"',
        f"id ::= {ids}",
        'done ::= "<search_complete>True</search_complete>"',
        'more ::= "<search_complete>False</search_complete>\\n<query>{\\"query\\": \\"" '
        f'qchar{{1,{max_query_chars}}} "\\"}}</query>"',
        r'qchar ::= [^"\\<>{}\x00-\x1f]',
        "",
    ])


def action_grammar(config: SearchConfig | None = None, *, max_query_chars: int | None = None,
                   spans: Sequence[str] | None = None) -> str:
    """The GBNF grammar of one searcher turn under ``config``.

    Document numbers run from 1 to the larger of ``search_k`` and ``initial_k`` (the parser still drops
    numbers beyond the latest block's real size), at most ``max_select`` of them.

    Args:
        config: The loop's settings (default: 8-3-3).
        max_query_chars: Longest query, in characters (no quotes, braces, angle brackets or control
            characters inside it). Default: 160, or less so that a whole turn fits ``max_new_tokens``
            (the tags take about 48 tokens; a token writes at least one character), since a turn cut
            by the token limit is invalid however well it started.

    Returns:
        The grammar text (GBNF).

    Example:
        >>> print(action_grammar(SearchConfig.from_name("3-2-2")))
        root ::= select? (done | more)
        select ::= "<important_info>[" (id (", " id){0,1})? "]</important_info>\\n"
        id ::= "1" | "2" | "3"
        done ::= "<search_complete>True</search_complete>"
        more ::= "<search_complete>False</search_complete>\\n<query>{\\"query\\": \\"" qchar{1,160} "\\"}</query>"
        qchar ::= [^"\\\\<>{}\\x00-\\x1f]
        <BLANKLINE>
    """
    config = config or SearchConfig()
    if max_query_chars is None:
        max_query_chars = min(160, max(16, config.max_new_tokens - 48))
    if max_query_chars < 1:
        raise ValueError("max_query_chars must be >= 1")
    grammar = _grammar(max(config.search_k, config.initial_k), config.max_select, max_query_chars)
    if spans is None:
        return grammar
    allowed = [s for s in dict.fromkeys(spans) if 0 < len(s) <= max_query_chars]
    if any(c in s for s in allowed for c in '"\\<>{}') or any(ord(c) < 32 for s in allowed for c in s):
        raise ValueError("a query span holds a character the query grammar refuses (quotes, backslash, <>{} or "
                         "control characters)")
    lines = grammar.splitlines()[:4]                     # root, select, id, done: the query rules replaced
    if not allowed:
        return "\n".join(["root ::= select? done", *lines[1:], ""])
    more = 'more ::= "<search_complete>False</search_complete>\\n<query>{\\"query\\": \\"" span "\\"}</query>"'
    return "\n".join([*lines, more, "span ::= " + " | ".join(json.dumps(s, ensure_ascii=False) for s in allowed), ""])
