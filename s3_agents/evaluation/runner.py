"""Run methods over datasets, score every answer, and keep the rows in a resumable JSONL file."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from s3_agents._tasks import gather_or_cancel
from s3_agents.evaluation.methods import Method
from s3_agents.llm.base import ChatClient
from s3_agents.metrics import agen_acc, answer_in_context, exact_match, f1_score
from s3_agents.qa import QAExample

__all__ = ["EvalRow", "ResultsFile", "evaluate"]

VOLATILE = ("seconds",)
"""Row fields that differ between two runs of the same deterministic methods (wall time)."""


@dataclass(frozen=True)
class EvalRow:
    """One scored answer: the unit of ``results.jsonl``."""

    method: str
    dataset: str
    id: str
    question: str
    answers: list[str]
    answer: str
    genacc: float
    em: float
    f1: float
    context_recall: float
    context_ids: list[str]
    searches: int
    turns: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    extra: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.dataset, self.id)


class ResultsFile:
    """``results.jsonl``: one row per (method, dataset, question), appended and fsynced as each finishes.

    A re-run reads the finished rows and skips them; a last line cut by an interruption is dropped.
    :meth:`finalize` rewrites the file sorted by key (atomically), so an interrupted-then-resumed run ends
    with the same file as an uninterrupted one (up to :data:`VOLATILE` fields).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[tuple[str, str, str], EvalRow] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = EvalRow(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line cut short when the previous run was stopped
                self.rows[row.key] = row
            self._rewrite()  # drop a cut line before appending after it
        self._handle = self.path.open("a", encoding="utf-8")

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self.rows

    def add(self, row: EvalRow) -> None:
        self.rows[row.key] = row
        self._handle.write(json.dumps(row.__dict__, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _rewrite(self) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", encoding="utf-8") as handle:
            for key in sorted(self.rows):
                handle.write(json.dumps(self.rows[key].__dict__, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.path)

    def finalize(self) -> list[EvalRow]:
        """Close, rewrite sorted, and return the rows."""
        self._handle.close()
        self._rewrite()
        return [self.rows[key] for key in sorted(self.rows)]


async def _score(method: Method, dataset: str, example: QAExample, judge: ChatClient | None) -> EvalRow:
    result = await method.arun(example.question)
    answers = list(example.answers)
    return EvalRow(
        method=method.name, dataset=dataset, id=example.id, question=example.question, answers=answers,
        answer=result.answer, genacc=await agen_acc(result.answer, answers, judge),
        em=exact_match(result.answer, answers), f1=f1_score(result.answer, answers),
        context_recall=answer_in_context(result.context, answers), context_ids=[p.id for p in result.context],
        searches=result.searches, turns=result.turns, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, seconds=round(result.seconds, 3), extra=dict(result.extra))


async def evaluate(methods: Sequence[Method], datasets: Mapping[str, Sequence[QAExample]], results: str | Path, *,
                   judge: ChatClient | None = None, concurrency: int = 4, limit: int | None = None,
                   show_progress: bool = True) -> list[EvalRow]:
    """Score every method on every dataset; rows already in ``results`` are kept, not recomputed.

    Args:
        methods: The strategies (names must be unique).
        datasets: Name -> examples.
        results: ``results.jsonl`` path (created, or resumed).
        judge: LLM judge for GenAcc when span match fails (``None``: span match only).
        concurrency: Questions in flight at once.
        limit: Only the first N questions of each dataset.
        show_progress: Progress bar.

    Returns:
        All rows, sorted by (method, dataset, id).

    Example:
        >>> rows = asyncio.run(evaluate([NaiveRAG(retriever, generator)], {"demo": load_demo_qa()},
        ...                             "runs/eval/results.jsonl", limit=20))            # doctest: +SKIP
    """
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique, got {names}")
    for name, examples in datasets.items():
        counts = Counter(ex.id for ex in examples)
        if any(n > 1 for n in counts.values()):
            repeated = sorted(i for i, n in counts.items() if n > 1)[:5]
            raise ValueError(f"dataset {name!r} has duplicate id(s) {repeated}: results are keyed by id")
    store = ResultsFile(results)
    jobs = [(m, name, ex) for name, examples in datasets.items() for ex in list(examples)[:limit] for m in methods]
    todo = [(m, name, ex) for m, name, ex in jobs if (m.name, name, ex.id) not in store]
    gate = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(todo), desc="evaluating", unit="answer", disable=not show_progress or not todo)

    async def one(method: Method, dataset: str, example: QAExample) -> None:
        async with gate:
            row = await _score(method, dataset, example, judge)
            store.add(row)
            bar.update(1)

    try:
        await gather_or_cancel(one(*item) for item in todo)
    finally:
        bar.close()
        rows = store.finalize()
    wanted = {(m.name, name, ex.id) for m, name, ex in jobs}
    return [row for row in rows if row.key in wanted]
