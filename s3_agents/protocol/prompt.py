"""The searcher's prompt: the instructions that teach the tag protocol, then the question and the initial
results (paraphrasing s3's)."""

from __future__ import annotations

import re

__all__ = ["START_MARKER", "prompt_question", "searcher_prompt"]

START_MARKER = "Now, start the loop with the following question and initial searched results:"
"""The line that separates the instructions from the episode (s3's reward code splits on it)."""

_SEARCHER_INSTRUCTIONS = """\
You are a search copilot for a generation model. Your job is to collect documents that help \
the generation model answer a question; the generation model sees only the documents you mark \
as important.

First decide whether the initial results below already answer the question. If they do, \
write <search_complete>True</search_complete> and nothing more.

Otherwise work in a loop: <query> -> <information> -> <important_info> -> <search_complete> -> <query> ...
- Put one search query as JSON between <query> and </query>, for example <query>{{"query": "..."}}</query>.
- The results come back numbered inside <information> and </information>.
- Then list the numbers of the documents that matter, at most {max_select}, from the latest \
results only, inside <important_info> and </important_info>, for example <important_info>[1, 4]</important_info>.
- Then write <search_complete>False</search_complete> and a new query to keep searching, or \
<search_complete>True</search_complete> to stop. You have at most {max_turns} searches.
- You may think inside <think> and </think> whenever you want.{bm25_hint}

Example of one round:
<important_info>[2]</important_info>
<search_complete>False</search_complete>
<query>{{"query": "a more specific question"}}</query>

{marker}
<question>
{question}
</question>
{information}"""

_QUESTION = re.compile(r"<question>\s*(.*?)\s*</question>", re.S)

_BM25_HINT = "\n- The search engine is BM25: Boolean operators (AND, OR) and parentheses help."


def searcher_prompt(question: str, information: str, *, max_select: int, max_turns: int, bm25: bool = False) -> str:
    """The searcher's first user message: instructions, the marker line, question and initial results."""
    return _SEARCHER_INSTRUCTIONS.format(
        max_select=max_select, max_turns=max_turns, bm25_hint=_BM25_HINT if bm25 else "",
        marker=START_MARKER, question=question, information=information,
    )


def prompt_question(prompt: str) -> str | None:
    """The question of a prompt written by :func:`searcher_prompt`, or ``None`` when it has no question block.

    Example:
        >>> prompt_question(searcher_prompt("Where is Gritia?", "", max_select=3, max_turns=3))
        'Where is Gritia?'
    """
    found = _QUESTION.search(prompt)
    return found.group(1) if found else None
