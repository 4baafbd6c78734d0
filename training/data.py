"""Training data: QA JSONL (see :func:`s3_agents.qa.load_qa`) to verl parquet rows for the ``s3_searcher`` loop.

Each row follows verl's RL dataset format: ``prompt`` (the question as a chat), ``agent_name``
(``s3_searcher``), ``data_source``, ``ability``, ``reward_model.ground_truth`` (question, gold answers
and, where the data has them, the supporting passage ids) and ``extra_info`` (split, index, question).
The agent loop does its own initial retrieval, so the prompt holds only the question. s3 trains only on
questions naive RAG gets wrong ("RAG-fails"): with a naive-RAG cache the others can be dropped, and
yes/no questions are dropped because span match cannot score them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from s3_agents.locks import atomic_path
from s3_agents.prompts import normalize_question
from s3_agents.qa import QAExample, is_yes_no
from s3_agents.rag_cache import RagCache

__all__ = ["PrepareReport", "to_rows", "write_parquet", "prepare_dataset"]



@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` kept and dropped."""

    total: int = 0
    written: int = 0
    yes_no: int = 0
    rag_succeeded: int = 0
    no_baseline: int = 0
    path: Path | None = None
    dropped_examples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.written} of {self.total} questions written to {self.path} (dropped: {self.yes_no} yes/no, "
                f"{self.rag_succeeded} answered by naive RAG, {self.no_baseline} without a baseline)")


def to_rows(items: Sequence[QAExample], *, data_source: str = "s3_qa", split: str = "train",
            agent_name: str = "s3_searcher") -> list[dict[str, Any]]:
    """verl RL rows for ``items`` (see the module docstring)."""
    rows = []
    for index, item in enumerate(items):
        question = normalize_question(item.question)
        truth: dict[str, Any] = {"question": question, "target": list(item.answers)}
        if item.metadata.get("supporting_ids"):
            truth["supporting_ids"] = [str(s) for s in item.metadata["supporting_ids"]]
        rows.append({
            "data_source": item.data_source or data_source,
            "agent_name": agent_name,
            "prompt": [{"role": "user", "content": question}],
            "ability": "fact-reasoning",
            "reward_model": {"style": "rule", "ground_truth": truth},
            "extra_info": {"split": split, "index": index, "question": question},
        })
    return rows


def write_parquet(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows to a parquet file atomically (a temporary file renamed into place)."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows)).to_parquet(tmp, index=False)
    return path


def prepare_dataset(items: Sequence[QAExample], out: str | Path, *, data_source: str = "s3_qa", split: str = "train",
                    rag_cache: RagCache | None = None, drop_rag_successes: bool = False, drop_yes_no: bool = True,
                    show_progress: bool = True) -> PrepareReport:
    """Filter ``items`` and write them as verl parquet.

    Args:
        items: Questions and answers (:func:`s3_agents.qa.load_qa`: FlashRAG / Search-R1 JSONL or plain).
        out: Parquet file to write.
        data_source: ``data_source`` of rows whose item has none.
        split: ``extra_info.split``.
        rag_cache: Naive-RAG baselines (fill it first with ``s3 precompute`` / :meth:`RagCache.precompute`).
        drop_rag_successes: s3's filter: keep only questions whose naive-RAG GenAcc is 0. Needs
            ``rag_cache``; questions without a baseline are dropped and counted.
        drop_yes_no: Drop yes/no/true/false questions.
        show_progress: Progress bar.

    Returns:
        Counts of what was written and dropped.

    Example:
        >>> items = [QAExample("Who founded Gritia?", ("Kaemia Tritrir",)), QAExample("Is Gritia old?", ("yes",))]
        >>> prepare_dataset(items, "/tmp/s3-train.parquet", show_progress=False).written
        1
    """
    if drop_rag_successes and rag_cache is None:
        raise ValueError("drop_rag_successes needs a rag_cache of naive-RAG baselines (s3 precompute)")
    report = PrepareReport(total=len(items))
    kept: list[QAExample] = []
    for item in tqdm(items, desc="filtering questions", unit="question", disable=not show_progress):
        if drop_yes_no and is_yes_no(item.answers):
            report.yes_no += 1
            continue
        if drop_rag_successes:
            baseline = rag_cache.get(item.question)
            if baseline is None:
                report.no_baseline += 1
                continue
            if baseline.acc > 0:
                report.rag_succeeded += 1
                if len(report.dropped_examples) < 5:
                    report.dropped_examples.append(item.question)
                continue
        kept.append(item)
    report.path = write_parquet(to_rows(kept, data_source=data_source, split=split), out)
    report.written = len(kept)
    return report
