"""Read JSONL corpora in the s3 / Search-R1 form and in the plain ``{id, title, text}`` form.

Two line shapes are accepted, one JSON object per line:

* wiki-18 (s3, Search-R1, FlashRAG): ``{"id": "12", "contents": "\\"Title\\"\\ntext"}``;
* plain: ``{"id": "12", "title": "Title", "text": "text"}``.

A malformed line raises :class:`~s3_agents.errors.CorpusFormatError` naming the file
and line number. With ``skip_bad_lines=True`` such lines are skipped and reported in
:attr:`Corpus.bad_lines`, never dropped silently. Files ending in ``.gz`` are read
through gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from s3_agents.errors import CorpusFormatError, DataFileError
from s3_agents.types import Passage

__all__ = [
    "BadLine",
    "Corpus",
    "load_corpus",
    "read_lines",
    "parse_passage",
    "write_corpus",
    "corpus_fingerprint",
    "demo_corpus_path",
    "demo_questions_path",
    "load_demo_corpus",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BadLine:
    """A corpus line that was skipped, with the reason."""

    line_no: int
    reason: str


@dataclass(slots=True)
class Corpus:
    """Passages read from one file, plus the lines that were skipped.

    Attributes:
        path: Where the passages came from.
        passages: Passages in file order.
        bad_lines: Skipped lines (empty unless ``skip_bad_lines=True`` was given).
    """

    path: str
    passages: list[Passage]
    bad_lines: list[BadLine] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.passages)

    def __iter__(self) -> Iterator[Passage]:
        return iter(self.passages)

    def summary(self) -> str:
        """One line for a person: how many passages were read and how many lines skipped."""
        text = f"{len(self.passages)} passages from {self.path}"
        if self.bad_lines:
            first = self.bad_lines[0]
            text += (
                f"; skipped {len(self.bad_lines)} bad line(s), "
                f"first at line {first.line_no}: {first.reason}"
            )
        return text


def _split_contents(contents: str) -> tuple[str, str]:
    """Split wiki-18 ``contents`` into (title, text): the first line is the quoted title."""
    head, sep, rest = contents.partition("\n")
    if not sep:
        return "", contents.strip()
    title = head.strip()
    if len(title) >= 2 and title[0] == '"' and title[-1] == '"':
        title = title[1:-1]
    return title, rest.strip()


def parse_passage(record: Any) -> Passage:
    """Turn one decoded JSON line into a :class:`Passage`.

    Args:
        record: The decoded JSON value of a corpus line.

    Returns:
        The passage.

    Raises:
        ValueError: If the record has neither shape; the message says what is missing.

    Example:
        >>> parse_passage({"id": 1, "contents": '"Paris"\\nCapital of France.'})
        Passage(id='1', title='Paris', text='Capital of France.', score=None)
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "id" not in record or record["id"] is None or isinstance(record["id"], (dict, list, bool)):
        raise ValueError('missing or invalid "id" (a string or integer is needed)')
    pid = str(record["id"]).strip()
    if not pid:
        raise ValueError('empty "id"')
    if "contents" in record:
        contents = record["contents"]
        if not isinstance(contents, str):
            raise ValueError('"contents" must be a string')
        title, text = _split_contents(contents)
    elif "text" in record:
        text, title = record["text"], record.get("title", "")
        if not isinstance(text, str) or not isinstance(title, str):
            raise ValueError('"title" and "text" must be strings')
        title, text = title.strip(), text.strip()
    else:
        raise ValueError('expected "contents" (wiki-18 form) or "text" (plain {id, title, text} form)')
    if not text and not title:
        raise ValueError("the passage is empty")
    return Passage(id=pid, title=title, text=text)


def read_lines(path: str | Path) -> Iterator[tuple[int, str | None, str]]:
    """The lines of a text file (``.gz`` read through gzip) as ``(line_no, text, problem)``.

    A line that is not UTF-8 comes as ``(line_no, None, "not UTF-8: byte 0x.. at column N")``, so a reader
    can name it or skip it; ``problem`` is ``""`` otherwise.

    Raises:
        DataFileError: If a ``.gz`` file is not gzip, or its stream ends early (a truncated file), naming
            the file and the line where reading stopped.

    Example:
        >>> next(read_lines(demo_corpus_path()))[0]
        1
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    line_no = 0
    with opener(path, "rb") as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    yield line_no, raw.decode("utf-8"), ""
                except UnicodeDecodeError as err:
                    yield line_no, None, f"not UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}"
        except gzip.BadGzipFile as err:
            raise DataFileError(path, line_no + 1, f"not a gzip file, though named .gz ({err})") from err
        except (EOFError, zlib.error) as err:
            raise DataFileError(path, line_no + 1, f"the gzip stream ends early or is damaged: a truncated or "
                                                   f"corrupt file ({err})") from err


def load_corpus(path: str | Path, *, skip_bad_lines: bool = False) -> Corpus:
    """Read a JSONL corpus.

    Args:
        path: A ``.jsonl`` (or ``.jsonl.gz``) file, one passage per line. Blank lines are ignored.
        skip_bad_lines: Skip malformed lines and record them in ``Corpus.bad_lines``
            instead of raising.

    Returns:
        The passages in file order.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CorpusFormatError: On the first malformed line or duplicate id, naming the file
            and line number (unless ``skip_bad_lines``).

    Example:
        >>> corpus = load_corpus(demo_corpus_path())
        >>> len(corpus) > 100, corpus.bad_lines
        (True, [])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    passages: list[Passage] = []
    bad: list[BadLine] = []
    first_seen: dict[str, int] = {}
    for line_no, line, problem in read_lines(path):
        if line is not None and not line.strip():
            continue
        try:
            if line is None:
                raise ValueError(problem)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"invalid JSON ({err.msg} at column {err.colno})") from err
            passage = parse_passage(record)
            if passage.id in first_seen:
                raise ValueError(
                    f"duplicate id {passage.id!r} (first seen on line {first_seen[passage.id]})"
                )
        except ValueError as err:
            if not skip_bad_lines:
                raise CorpusFormatError(path, line_no, str(err)) from err
            bad.append(BadLine(line_no, str(err)))
            continue
        first_seen[passage.id] = line_no
        passages.append(passage)
    corpus = Corpus(str(path), passages, bad)
    if bad:
        logger.warning("%s", corpus.summary())
    return corpus


def write_corpus(passages: Iterable[Passage], path: str | Path, *, form: str = "wiki18") -> int:
    """Write passages as JSONL in the ``"wiki18"`` (``id, contents``) or ``"plain"`` form.

    Returns:
        The number of passages written.
    """
    if form not in ("wiki18", "plain"):
        raise ValueError(f"form must be 'wiki18' or 'plain', got {form!r}")
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for passage in passages:
            record = passage.to_document() if form == "wiki18" else passage.to_record()
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def corpus_fingerprint(passages: Iterable[Passage]) -> str:
    """A SHA-256 over ids, titles and texts: equal fingerprints mean the same corpus."""
    digest = hashlib.sha256()
    for passage in passages:
        for part in (passage.id, passage.title, passage.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
    return digest.hexdigest()


def demo_corpus_path() -> Path:
    """Path of the shipped demo corpus (the fictional Archipelago of Veloria, wiki-18 form)."""
    return Path(str(resources.files("s3_agents") / "data" / "demo_corpus.jsonl"))


def demo_questions_path() -> Path:
    """Path of the shipped demo questions (``{id, question, answers, hops, supporting_ids}``)."""
    return Path(str(resources.files("s3_agents") / "data" / "demo_questions.jsonl"))


def load_demo_corpus() -> Corpus:
    """The shipped demo corpus: a few hundred passages about a fictional archipelago."""
    return load_corpus(demo_corpus_path())

