"""Answer metrics: SQuAD-normalised exact match and F1, span match, and GenAcc (span or LLM judge)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from s3_agents.llm.base import ChatClient
from s3_agents.prompts import judge_prompt
from s3_agents.types import Passage

__all__ = ["normalize_answer", "exact_match", "f1_score", "span_match", "answer_in_context", "support_recall",
           "judge_says_yes", "gen_acc", "agen_acc"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Best token-level F1 between the prediction and any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold = normalize_answer(answer).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def span_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a normalised gold answer occurs as a token sequence inside the normalised prediction."""
    pred = normalize_answer(prediction).split()
    for answer in answers:
        gold = normalize_answer(answer).split()
        if gold and any(pred[i:i + len(gold)] == gold for i in range(len(pred) - len(gold) + 1)):
            return 1.0
    return 0.0


def answer_in_context(passages: Sequence[Passage], answers: Sequence[str]) -> float:
    """Answer recall of a context: 1.0 when a gold answer occurs (as whole normalised tokens) in any passage.

    Example:
        >>> answer_in_context([Passage("1", "Ketroul", "Its currency is the mobroun.")], ["Mobroun"])
        1.0
    """
    return float(any(span_match(f"{p.title} {p.text}", answers) for p in passages))


def support_recall(passages: Sequence[Passage], supporting_ids: Sequence[str]) -> float:
    """Share of a question's supporting passages (by id) that are in a context (0.0 when it has none).

    Example:
        >>> support_recall([Passage("7", "Gritia", "..."), Passage("3", "Ashwater", "...")], ["7", "12"])
        0.5
    """
    gold = set(supporting_ids)
    return len(gold & {p.id for p in passages}) / len(gold) if gold else 0.0


def judge_says_yes(reply: str) -> bool | None:
    """Read a judge's reply strictly: its first word must be yes or no; anything else is ``None``."""
    words = re.findall(r"[a-z]+", reply.lower())
    if not words or words[0] not in ("yes", "no"):
        return None
    return words[0] == "yes"


def _verdict_without_judge(prediction: str, answers: Sequence[str], judge: ChatClient | None) -> float | None:
    """GenAcc's verdict when no judge call is needed (span match, no judge, empty answer), else ``None``."""
    if span_match(prediction, answers):
        return 1.0
    if judge is None or not prediction.strip():
        return 0.0
    return None


def _judge_messages(prediction: str, answers: Sequence[str]) -> list[dict[str, str]]:
    return [{"role": "user", "content": judge_prompt(prediction, answers)}]


def gen_acc(prediction: str, answers: Sequence[str], judge: ChatClient | None = None, *, retries: int = 1) -> float:
    """GenAcc: span match, or else (with a judge) an LLM's yes/no on whether an answer is contained.

    The judge is asked with temperature 0; a reply that is not a clear yes/no is asked again up to
    ``retries`` times with the same model, then counts as 0.
    """
    verdict = _verdict_without_judge(prediction, answers, judge)
    if verdict is not None:
        return verdict
    for _ in range(retries + 1):
        said = judge_says_yes(judge.chat(_judge_messages(prediction, answers), max_tokens=5, temperature=0.0).text)
        if said is not None:
            return float(said)
    return 0.0


async def agen_acc(prediction: str, answers: Sequence[str], judge: ChatClient | None = None, *,
                   retries: int = 1) -> float:
    """Async :func:`gen_acc`."""
    verdict = _verdict_without_judge(prediction, answers, judge)
    if verdict is not None:
        return verdict
    for _ in range(retries + 1):
        reply = await judge.achat(_judge_messages(prediction, answers), max_tokens=5, temperature=0.0)
        said = judge_says_yes(reply.text)
        if said is not None:
            return float(said)
    return 0.0
