"""Run methods over datasets, score every answer, and keep the rows in a resumable JSONL file."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from s3_agents._tasks import gather_bounded
from s3_agents.errors import DataError
from s3_agents.evaluation.methods import Method
from s3_agents.llm.base import ChatClient
from s3_agents.locks import atomic_path, hold_lock
from s3_agents.metrics import agen_acc, answer_in_context, exact_match, f1_score, support_recall
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
    support_recall: float | None = None
    """Share of the question's supporting passages in the context, where the data names them (``supporting_ids``
    in the QA file's metadata, as ``s3 data hotpotqa`` writes them); ``None`` otherwise."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.dataset, self.id)


class ResultsFile:
    """``results.jsonl``: one row per (method, dataset, question), appended and fsynced as each finishes.

    A re-run reads the finished rows and skips them. A last line cut by an interruption (even inside a
    multi-byte character) is dropped and redone; any other line that is not a row is moved to
    ``results.jsonl.rejected`` with a warning naming its line, never deleted. A row with fields this
    version does not know is kept, those fields moved into ``extra``. One run at a time: the file is locked
    (``results.jsonl.lock``, released when the process ends, even on SIGKILL) and a second run is refused.
    :meth:`finalize` rewrites the file sorted by key (atomically), so an interrupted-then-resumed run ends
    with the same file as an uninterrupted one (up to :data:`VOLATILE` fields).

    Raises:
        RuntimeError: If another run holds the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[tuple[str, str, str], EvalRow] = {}
        self._write_lock = threading.Lock()  # rows come from worker threads (:meth:`aadd`)
        self._lock = hold_lock(self.path.with_name(self.path.name + ".lock"), f"another run is writing {self.path}",
                               "wait for it or stop it, or give this run another results file")
        try:
            if self.path.exists():
                self._read()
                self._rewrite()  # drop a cut line before appending after it
            self._handle = self.path.open("a", encoding="utf-8")
        except BaseException:
            self._lock.close()
            raise

    def _read(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        cut = lines.pop()  # after the last newline: empty, or a line the interruption cut short
        rejected: list[tuple[int, bytes]] = []
        for number, raw in enumerate(lines, start=1):
            row = _parse(raw)
            if row is not None:
                self.rows[row.key] = row
            elif raw.strip():
                rejected.append((number, raw))
        if cut.strip() and (row := _parse(cut)) is not None:  # a whole row that only lacks its newline
            self.rows[row.key] = row
        if rejected:
            side = self.path.with_name(self.path.name + ".rejected")
            with side.open("ab") as handle:
                for _, raw in rejected:
                    handle.write(raw + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            numbers = ", ".join(str(n) for n, _ in rejected[:10]) + (" ..." if len(rejected) > 10 else "")
            warnings.warn(f"{self.path}: line(s) {numbers} are not result rows; moved to {side} (they will be "
                          "recomputed)", RuntimeWarning, stacklevel=3)

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self.rows

    def add(self, row: EvalRow) -> None:
        """Store ``row`` and append it to the file, fsynced before returning (blocking)."""
        line = json.dumps(row.__dict__, ensure_ascii=False) + "\n"
        with self._write_lock:
            self.rows[row.key] = row
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    async def aadd(self, row: EvalRow) -> None:
        """:meth:`add` in a worker thread, so the fsync does not stall the event loop."""
        await asyncio.to_thread(self.add, row)

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp, tmp.open("w", encoding="utf-8") as handle:
            for key in sorted(self.rows):
                handle.write(json.dumps(self.rows[key].__dict__, ensure_ascii=False) + "\n")

    def finalize(self) -> list[EvalRow]:
        """Close, rewrite sorted, release the lock, and return the rows."""
        try:
            with self._write_lock:
                self._handle.close()
                self._rewrite()
        finally:
            self._lock.close()
        return [self.rows[key] for key in sorted(self.rows)]


_FIELDS = tuple(f.name for f in fields(EvalRow))
_REQUIRED = tuple(f.name for f in fields(EvalRow) if f.default is MISSING)


def _parse(raw: bytes) -> EvalRow | None:
    """A row from one line, or ``None`` if the line is not one (undecodable, not JSON, fields missing)."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or not set(_REQUIRED) <= set(data):
            return None
        unknown = {k: v for k, v in data.items() if k not in _FIELDS}
        known = {k: data[k] for k in _FIELDS if k in data}
        if unknown:
            known["extra"] = {**(known["extra"] if isinstance(known["extra"], dict) else {}), **unknown}
        return EvalRow(**known)
    except (UnicodeDecodeError, ValueError, TypeError):
        return None


async def _score(method: Method, dataset: str, example: QAExample, judge: ChatClient | None) -> EvalRow:
    result = await method.arun(example.question)
    answers = list(example.answers)
    supporting = [str(s) for s in example.metadata.get("supporting_ids") or []]
    return EvalRow(
        method=method.name, dataset=dataset, id=example.id, question=example.question, answers=answers,
        answer=result.answer, genacc=await agen_acc(result.answer, answers, judge),
        em=exact_match(result.answer, answers), f1=f1_score(result.answer, answers),
        context_recall=answer_in_context(result.context, answers), context_ids=[p.id for p in result.context],
        searches=result.searches, turns=result.turns, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, seconds=round(result.seconds, 3), extra=dict(result.extra),
        support_recall=support_recall(result.context, supporting) if supporting else None)


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
            raise DataError(f"dataset {name!r} has duplicate id(s) {repeated}: results are keyed by id")
    store = await asyncio.to_thread(ResultsFile, results)
    jobs = [(m, name, ex) for name, examples in datasets.items() for ex in list(examples)[:limit] for m in methods]
    todo = [(m, name, ex) for m, name, ex in jobs if (m.name, name, ex.id) not in store]
    bar = tqdm(total=len(todo), desc="evaluating", unit="answer", disable=not show_progress or not todo)

    async def one(method: Method, dataset: str, example: QAExample) -> None:
        row = await _score(method, dataset, example, judge)
        await store.aadd(row)
        bar.update(1)

    try:
        await gather_bounded((one(*item) for item in todo), concurrency=max(1, concurrency))
    finally:
        bar.close()
        rows = await asyncio.shield(asyncio.to_thread(store.finalize))
    wanted = {(m.name, name, ex.id) for m, name, ex in jobs}
    return [row for row in rows if row.key in wanted]
