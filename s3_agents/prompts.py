"""Prompt texts of the generator and the answer judge (paraphrasing s3's), and the question's normal form.

The searcher's prompt is part of the tag protocol: :mod:`s3_agents.protocol.prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence

from s3_agents.types import Passage

__all__ = [
    "generator_messages",
    "judge_prompt",
    "format_context",
    "normalize_question",
]

def normalize_question(question: str) -> str:
    """Strip the question and end it with ``?`` (s3 does this before prompts and cache keys)."""
    question = question.strip()
    return question if question.endswith("?") else question + "?"


def format_context(passages: Sequence[Passage]) -> str:
    """The generator's context: ``Doc k (Title: t)`` newline text, blank line between documents."""
    return "".join(f"Doc {i} (Title: {p.title})\n{p.text}\n\n" for i, p in enumerate(passages, 1))


def generator_messages(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    """Chat messages asking the frozen generator to answer from the context."""
    if passages:
        system = ("Use the following contexts (some might be irrelevant) on demand:\n"
                  f"Contexts:\n{format_context(passages)}"
                  "Answer the question directly and briefly. Do not explain, do not add other text.")
    else:
        system = "Answer the question directly and briefly. Do not explain, do not add other text."
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def judge_prompt(prediction: str, answers: Sequence[str]) -> str:
    """Ask the judge whether a response contains any of the gold answers (yes / no)."""
    return ("Check whether any of the golden answers is contained in the response, allowing for "
            "equivalent wording.\n"
            f"Response: {prediction}\n"
            f"Golden answers: {list(answers)}\n"
            "Reply with a single word: yes or no.")
