"""QA datasets: JSONL in the FlashRAG / Search-R1 form or plain ``{question, answers}``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3_agents.corpus import demo_questions_path, read_lines
from s3_agents.errors import DataError, DataFileError

__all__ = ["QAExample", "load_qa", "load_demo_qa", "is_yes_no"]

_YES_NO = frozenset({"yes", "no", "true", "false"})


def is_yes_no(answers: Sequence[str]) -> bool:
    """A question answered yes/no/true/false (its first gold answer): no passage holds such an answer, and span
    match would accept "not true" for "true". Aliases do not count (MuSiQue lists "no" among Norway's).

    Example:
        >>> is_yes_no(["Yes."]), is_yes_no(["Norway", "NO", "no"])
        (True, False)
    """
    return bool(answers) and answers[0].strip().lower().rstrip(".") in _YES_NO


@dataclass(frozen=True)
class QAExample:
    """A question with its gold answers.

    Attributes:
        question: The question text.
        answers: Gold answers (any one counts).
        id: The dataset's id, or ``"line-N"`` when it has none.
        data_source: Dataset name, when the line says (``data_source``).
        metadata: Everything else on the line (FlashRAG ``metadata``, hops, supporting ids...).
    """

    question: str
    answers: tuple[str, ...]
    id: str = ""
    data_source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


def _example(record: dict[str, Any], line_no: int) -> QAExample:
    answers = record.get("golden_answers", record.get("answers", record.get("answer")))
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers:
        raise ValueError("needs non-empty 'golden_answers' or 'answers'")
    question = str(record.get("question", "")).strip()
    if not question:
        raise ValueError("needs a non-empty 'question'")
    known = {"id", "question", "golden_answers", "answers", "answer", "data_source", "metadata"}
    metadata = dict(record.get("metadata") or {}) | {k: v for k, v in record.items() if k not in known}
    return QAExample(question=question, answers=tuple(str(a) for a in answers),
                     id=str(record.get("id", f"line-{line_no}")), data_source=record.get("data_source"),
                     metadata=metadata)


def load_qa(path: str | Path) -> list[QAExample]:
    """Read a QA JSONL file: ``{"id", "question", "golden_answers", "metadata"}`` (FlashRAG, Search-R1) or
    ``{"question", "answers"}``.

    Raises:
        FileNotFoundError: If the file is missing.
        DataFileError: For malformed lines (a ``ValueError``), naming the file and the lines (the first
            eleven, and how many more).
        DataError: If the file holds no question.

    Example:
        >>> examples = load_qa(demo_questions_path())
        >>> examples[0].question, examples[0].answers, examples[0].id
        ('In which city was Kaemia Tritrir born?', ('Traeceith',), 'q1')
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"QA file not found: {path}")
    examples: list[QAExample] = []
    problems: list[tuple[int, str]] = []
    for line_no, line, problem in read_lines(path):
        if line is None:
            problems.append((line_no, problem))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            examples.append(_example(record, line_no))
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            problems.append((line_no, str(err)))
    if problems:
        (first, reason), rest = problems[0], problems[1:11]
        more = "".join(f"; line {n}: {why}" for n, why in rest)
        more += f"; ... {len(problems) - 11} more" if len(problems) > 11 else ""
        raise DataFileError(path, first, f'{reason}{more} (expected {{"question", "golden_answers" | "answers": '
                                         f'[...]}} per line)')
    if not examples:
        raise DataError(f"{path}: no questions in the file")
    return examples


def load_demo_qa() -> list[QAExample]:
    """The shipped multi-hop questions over the demo corpus (hops and supporting ids in ``metadata``)."""
    return load_qa(demo_questions_path())
