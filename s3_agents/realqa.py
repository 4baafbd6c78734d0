"""Real multi-hop QA in: HotpotQA, MuSiQue, 2WikiMultihopQA and FlashRAG JSONL, as a corpus and question splits.

Each question of these datasets comes with its own paragraphs (the gold ones and distractors). The paragraphs of
all questions are pooled into one corpus, deduplicated by title and text, so that a question's retrieval competes
with every other question's paragraphs. Questions are split into train / dev / test by seed, with no question in
two splits, and written in the layout of ``s3 data world`` (:func:`~s3_agents.worlds.write_world`): ``corpus.jsonl``
(wiki-18 form), ``train.jsonl`` / ``dev.jsonl`` / ``test.jsonl`` and ``world.json``. So everything that reads a
world reads them too: ``load_world``, the warm start's ``--source chain``, ``s3 eval``.

Every question carries ``supporting_ids`` (its gold passages in the pooled corpus) and a ``chain``: one hop per
supporting passage, with the oracle query that finds it:

* HotpotQA and 2WikiMultihopQA: the supporting titles (without a parenthesised disambiguation), in hop order: the
  dataset's order, except that a HotpotQA bridge question starts from the paragraph whose title it names. The
  second hop's title is then the bridge entity;
* MuSiQue: the question decomposition's sub-questions, with ``#1``, ``#2``... replaced by the earlier answers.

Formats read (a JSON list or JSON lines, ``.gz`` too):

* ``hotpotqa``: the original JSON (``_id``, ``supporting_facts [[title, sent]]``, ``context [[title, [sents]]]``)
  and the Hugging Face layout (``id``, ``supporting_facts {title[], sent_id[]}``, ``context {title[],
  sentences[]}``);
* ``2wiki``: 2WikiMultihopQA, the HotpotQA original layout plus ``evidences`` (kept in the question's metadata);
* ``musique``: MuSiQue (``paragraphs [{idx, title, paragraph_text, is_supporting}]``, ``question_decomposition``);
  unanswerable questions are skipped;
* ``flashrag``: FlashRAG / Search-R1 JSONL (``id``, ``question``, ``golden_answers``, ``metadata``) whose
  ``metadata`` holds one of the layouts above.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3_agents.corpus import corpus_fingerprint
from s3_agents.errors import DataError, DataFileError
from s3_agents.qa import is_yes_no
from s3_agents.types import Passage
from s3_agents.worlds import SPLITS, World

__all__ = ["FORMATS", "QARecord", "read_qa_records", "pool_records", "measure_headroom", "write_real_qa"]

FORMATS = ("hotpotqa", "2wiki", "musique", "flashrag")
"""The formats :func:`read_qa_records` reads."""

_PARENTHESES = re.compile(r"\s*\([^)]*\)\s*$")
_PLACEHOLDER = re.compile(r"#(\d+)")


@dataclass(frozen=True)
class QARecord:
    """One question with its own paragraphs, before pooling.

    Attributes:
        id: The dataset's question id.
        question: The question.
        answers: Gold answers (the first is the dataset's answer; then aliases).
        type: The dataset's question type (``bridge``, ``comparison``, ``2hop``...).
        paragraphs: ``(title, text)`` of each paragraph given with the question.
        supports: Indexes into ``paragraphs`` of the supporting ones, in hop order.
        queries: The oracle query of each supporting paragraph (same order).
        source: The format it came from.
        metadata: Anything else worth keeping (``level``, ``evidences``, the decomposition).
    """

    id: str
    question: str
    answers: tuple[str, ...]
    type: str
    paragraphs: tuple[tuple[str, str], ...]
    supports: tuple[int, ...]
    queries: tuple[str, ...]
    source: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


def _join(sentences: Sequence[str]) -> str:
    """Sentences as one paragraph on one line: HotpotQA's carry their leading space, 2WikiMultihopQA's do not."""
    text = ""
    for sentence in sentences:
        if text and not text[-1].isspace() and not sentence[:1].isspace():
            text += " "
        text += sentence
    return _one_line(text)


def _one_line(text: str) -> str:
    """Whitespace runs (newlines too) as single spaces: the searcher reads one document a line."""
    return " ".join(text.split())


def _entity(title: str) -> str:
    """A Wikipedia title as a person would write it: ``"Claudio López (footballer)"`` -> ``"Claudio López"``."""
    return _PARENTHESES.sub("", title).strip() or title


def _records(path: Path) -> Iterator[tuple[int, int, Any]]:
    """``(line_no, index, record)`` of a JSON list or a JSON-lines file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] != "[":
        index = 0
        for line_no, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield line_no, index, json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFileError(path, line_no, f"not JSON ({err.msg}, column {err.colno})") from err
                index += 1
        return
    decoder = json.JSONDecoder()
    pos, index = start + 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise DataFileError(path, text.count("\n", 0, pos) + 1, "the JSON list is not closed: a truncated file?")
        if text[pos] == "]":
            return
        line_no = text.count("\n", 0, pos) + 1
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise DataFileError(path, err.lineno, f"not JSON ({err.msg}, column {err.colno})") from err
        yield line_no, index, record
        index += 1


def _supporting_titles(facts: Any) -> list[str]:
    """The supporting titles in first-mention order, from either layout of ``supporting_facts``."""
    if isinstance(facts, dict):
        titles = list(facts["title"])
    else:
        titles = [fact[0] for fact in facts]
    return list(dict.fromkeys(str(t) for t in titles))


def _context(record: dict[str, Any]) -> list[tuple[str, str]]:
    context = record["context"]
    if isinstance(context, dict):                                    # Hugging Face layout
        bodies = context.get("sentences", context.get("content"))
        if bodies is None:
            raise KeyError("context.sentences")
        return [(str(t), _join(s)) for t, s in zip(context["title"], bodies, strict=True)]
    return [(str(item[0]), _join(item[1])) for item in context]       # original layout


def _hop_order(titles: list[str], question: str) -> list[str]:
    """Bridge order: the paragraph whose title the question names comes first; else the dataset's order (its
    supporting facts mostly list the hops in reasoning order)."""
    named = [_entity(t).lower() in question.lower() for t in titles]
    if len(titles) == 2 and named == [False, True]:
        return titles[::-1]
    return titles


def _hotpot_like(record: dict[str, Any], source: str, answers: list[str]) -> QARecord:
    paragraphs = _context(record)
    by_title: dict[str, int] = {}
    for i, (title, _) in enumerate(paragraphs):
        by_title.setdefault(title, i)
    titles = _supporting_titles(record["supporting_facts"])
    missing = [t for t in titles if t not in by_title]
    if missing:
        raise ValueError(f"supporting title {missing[0]!r} is not among the question's paragraphs")
    kind = str(record.get("type", ""))
    if kind in ("bridge", "compositional", "inference") and source != "2wiki":
        titles = _hop_order(titles, str(record["question"]))
    keep = {k: record[k] for k in ("level", "evidences") if k in record}
    return QARecord(id=str(record.get("_id", record.get("id", ""))), question=str(record["question"]).strip(),
                    answers=tuple(answers), type=kind, paragraphs=tuple(paragraphs),
                    supports=tuple(by_title[t] for t in titles), queries=tuple(_entity(t) for t in titles),
                    source=source, metadata=keep)


def _musique(record: dict[str, Any], answers: list[str]) -> QARecord | None:
    if record.get("answerable") is False:
        return None
    paragraphs = [(_one_line(str(p["title"])), _one_line(str(p["paragraph_text"]))) for p in record["paragraphs"]]
    position = {int(p.get("idx", i)): i for i, p in enumerate(record["paragraphs"])}
    steps = record["question_decomposition"]
    found: list[str] = []
    queries, supports = [], []
    for step in steps:
        query = _PLACEHOLDER.sub(lambda m: found[int(m.group(1)) - 1] if int(m.group(1)) <= len(found)
                                 else m.group(0), str(step["question"]))
        queries.append(" ".join(query.replace(">>", " ").split()))       # "Hello Love >> performer"
        found.append(str(step["answer"]))
        supports.append(position[int(step["paragraph_support_idx"])])
    decomposition = [{"question": s["question"], "answer": s["answer"]} for s in steps]
    return QARecord(id=str(record["id"]), question=str(record["question"]).strip(), answers=tuple(answers),
                    type=str(record["id"]).split("__")[0], paragraphs=tuple(paragraphs), supports=tuple(supports),
                    queries=tuple(queries), source="musique", metadata={"decomposition": decomposition})


def _answers(record: dict[str, Any]) -> list[str]:
    answers = record.get("golden_answers", record.get("answers", record.get("answer")))
    answers = [answers] if isinstance(answers, str) else list(answers or [])
    answers += [str(a) for a in record.get("answer_aliases") or []]
    answers = list(dict.fromkeys(str(a).strip() for a in answers if str(a).strip()))
    if not answers:
        raise ValueError("no answer")
    return answers


def _parse(record: Any, form: str) -> QARecord | None:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if form == "flashrag":
        record = {**(record.get("metadata") or {}), **{k: v for k, v in record.items() if k != "metadata"}}
        form = "musique" if "question_decomposition" in record else "hotpotqa"
        if "context" not in record and form == "hotpotqa":
            raise ValueError("its metadata holds no paragraphs (context or paragraphs): a corpus cannot be built "
                             "from it; index your own corpus with `s3 index build` and use `s3 eval` instead")
    if not str(record.get("question", "")).strip():
        raise ValueError("no question")
    if not str(record.get("_id", record.get("id", ""))).strip():
        raise ValueError("no question id (_id or id)")
    answers = _answers(record)
    if form == "musique":
        return _musique(record, answers)
    return _hotpot_like(record, form, answers)


def read_qa_records(path: str | Path, form: str) -> list[QARecord]:
    """Read one dataset file.

    Args:
        path: A JSON list or JSON-lines file (``.gz`` allowed).
        form: One of :data:`FORMATS`.

    Returns:
        The questions in file order (MuSiQue's unanswerable ones left out).

    Raises:
        FileNotFoundError: If the file is missing.
        DataFileError: For a record that is not JSON or lacks a field, naming the file, the line and the
            record.

    Example:
        >>> records = read_qa_records("hotpot_dev_distractor_v1.json", "hotpotqa")   # doctest: +SKIP
        >>> records[0].queries                                                        # doctest: +SKIP
        ('Scott Derrickson', 'Ed Wood')
    """
    if form not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {form!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"QA file not found: {path}")
    out = []
    for line_no, index, record in _records(path):
        try:
            parsed = _parse(record, form)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            what = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            rid = record.get("_id", record.get("id")) if isinstance(record, dict) else None
            raise DataFileError(path, line_no, f"record {index + 1}{f' ({rid})' if rid else ''}: {what} "
                                               f"(read as {form})") from err
        if parsed is not None:
            out.append(parsed)
    if not out:
        raise DataError(f"{path}: no questions in the file")
    return out


def pool_records(records: Iterable[QARecord], *, train_only: Iterable[QARecord] = (), seed: int = 0,
                 shares: Sequence[float] = (0.5, 0.25, 0.25), yes_no: bool = False) -> World:
    """Pool the questions' paragraphs into one corpus and split the questions.

    Args:
        records: Questions from :func:`read_qa_records` (several files may be chained), split by ``shares``.
        train_only: More questions that all go to the train split (another dataset's train set); their
            paragraphs join the corpus.
        seed: Seed of the split: the same questions and seed give the same splits, whatever their order.
        shares: Train, dev and test shares (normalised to sum to 1).
        yes_no: Keep questions answered "yes" or "no" (left out by default: no passage holds such an answer,
            so answer-in-context, the headline measure, says nothing about them).

    Returns:
        A :class:`~s3_agents.worlds.World`: passages deduplicated by title and text, ids ``"1"``, ``"2"``... in
        order of first appearance; questions with ``id``, ``question``, ``answers``, ``type``, ``hops``,
        ``supporting_ids``, ``chain``, ``source``, ``split`` (a question id seen twice is kept once).

    Example:
        >>> world = pool_records(read_qa_records("dev.jsonl", "hotpotqa"), seed=0)      # doctest: +SKIP
        >>> write_world(world, "realqa")                                                 # doctest: +SKIP
    """
    if len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0:
        raise ValueError(f"shares must be three non-negative numbers (train, dev, test), got {list(shares)}")
    world = World(seed=seed)
    ids: dict[tuple[str, str], str] = {}
    seen: set[str] = set()
    extra = {r.id for r in train_only}
    for record in [*records, *train_only]:
        if record.id in seen or (not yes_no and is_yes_no(record.answers)):
            continue
        seen.add(record.id)
        pids = []
        for title, text in record.paragraphs:
            if (title, text) not in ids:
                ids[title, text] = str(len(world.passages) + 1)
                world.passages.append(Passage(id=ids[title, text], title=title, text=text))
            pids.append(ids[title, text])
        chain = [{"query": query, "passage_id": pids[i]} for i, query in zip(record.supports, record.queries)]
        world.questions.append({"id": record.id, "question": record.question, "answers": list(record.answers),
                                "type": record.type, "hops": len(chain),
                                "supporting_ids": list(dict.fromkeys(pids[i] for i in record.supports)),
                                "chain": chain, "source": record.source, **record.metadata})
    if not world.questions:
        raise DataError("no question left to split" + ("" if yes_no else " (yes/no questions are left out)"))
    for question in world.questions:
        if question["id"] in extra:
            question["split"] = SPLITS[0]
    order = sorted((q for q in world.questions if q["id"] not in extra), key=lambda q: q["id"])
    random.Random(seed).shuffle(order)
    total = sum(shares)
    cut_train = round(len(order) * shares[0] / total)
    cut_dev = cut_train + round(len(order) * shares[1] / total)
    for i, question in enumerate(order):
        question["split"] = SPLITS[0] if i < cut_train else SPLITS[1] if i < cut_dev else SPLITS[2]
    return world


def measure_headroom(world: World, retriever: Any, *, split: str, ks: Sequence[int] = (3, 10),
                     oracle_k: int = 10) -> dict[str, Any]:
    """How much a searcher could add to naive retrieval on one split, with one retriever.

    Args:
        world: Questions and corpus (:func:`pool_records`).
        retriever: A retriever over ``world.passages``.
        split: Which questions.
        ks: Depths of naive retrieval (the raw question as the query).
        oracle_k: Depth at which each oracle chain query must find its supporting passage.

    Returns:
        ``questions``; per ``k``: ``naive_answer_in_context@k`` (a gold answer is in the top-``k``) and
        ``naive_support_recall@k`` (share of a question's supporting passages in the top-``k``, averaged); and
        ``oracle_support_recall@{oracle_k}`` (share of the chain's hops whose query finds its passage) and
        ``oracle_answer_in_context@{oracle_k}`` (the answer is in the union of the chain queries' results).

    Example:
        >>> measure_headroom(world, load_retriever("realqa/index-dense"), split="dev")   # doctest: +SKIP
        {'questions': 205, 'naive_answer_in_context@3': 0.52, ...}
    """
    from s3_agents.metrics import answer_in_context, support_recall

    questions = world.split(split)
    if not questions:
        raise DataError(f"no {split} questions")
    out: dict[str, Any] = {"questions": len(questions)}
    deepest = retriever.search([q["question"] for q in questions], max(ks))
    for k in ks:
        tops = [top[:k] for top in deepest]
        out[f"naive_answer_in_context@{k}"] = _mean(answer_in_context(t, q["answers"]) for q, t in zip(questions, tops))
        out[f"naive_support_recall@{k}"] = _mean(support_recall(t, q["supporting_ids"])
                                                 for q, t in zip(questions, tops))
    found = iter(retriever.search([hop["query"] for q in questions for hop in q["chain"]], oracle_k))
    hop_hits, answered = [], []
    for q in questions:
        hits = [next(found) for _ in q["chain"]]
        hop_hits += [hop["passage_id"] in {p.id for p in hit} for hop, hit in zip(q["chain"], hits)]
        answered.append(answer_in_context([p for hit in hits for p in hit], q["answers"]))
    out[f"oracle_support_recall@{oracle_k}"] = _mean(hop_hits)
    out[f"oracle_answer_in_context@{oracle_k}"] = _mean(answered)
    return out


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return round(sum(items) / len(items), 4) if items else 0.0


def write_real_qa(world: World, out: str | Path, *, sources: Sequence[str] = (), indexes: bool = True,
                  embedder: Any = None, progress: bool = True) -> dict[str, Any]:
    """Write a pooled dataset in the world layout, index it, and record its retrieval headroom.

    Args:
        world: From :func:`pool_records`.
        out: Folder for ``corpus.jsonl``, the three splits and ``world.json``; with ``indexes``, also
            ``index-dense`` (the embedder over FAISS) and ``index-bm25``, reused when already built.
        sources: The files read, recorded in ``world.json``.
        indexes: Build the two indexes and measure each split's headroom with each (:func:`measure_headroom`).
        embedder: Passage embedder of ``index-dense`` (default: the offline MiniLM).
        progress: Show the indexing progress bars.

    Returns:
        The manifest written to ``world.json``: ``seed``, ``passages``, ``questions`` per split, ``sources`` and,
        with ``indexes``, ``headroom[retriever][split]``.

    Example:
        >>> world = pool_records(read_qa_records("dev_1025.jsonl", "hotpotqa"))             # doctest: +SKIP
        >>> write_real_qa(world, "realqa")["headroom"]["dense"]["dev"]["naive_answer_in_context@3"]  # doctest: +SKIP
        0.54
    """
    from s3_agents.worlds import write_world

    out = Path(out)
    old = out / "world.json"
    previous = json.loads(old.read_text(encoding="utf-8")).get("corpus") if old.is_file() else None
    paths = write_world(world, out)
    manifest: dict[str, Any] = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    manifest["corpus"] = corpus_fingerprint(world.passages)
    manifest["sources"] = [str(s) for s in sources]
    _write_manifest(paths["manifest"], manifest)           # the corpus's fingerprint first: a rerun resumes its index
    if indexes:
        from s3_agents.retrievers import build_index, load_retriever

        manifest["headroom"] = {}
        for name, backend in (("dense", "faiss"), ("bm25", "bm25")):
            path = out / f"index-{name}"
            if previous != manifest["corpus"]:
                shutil.rmtree(path, ignore_errors=True)          # an index of another corpus
            options = {"embedder": embedder} if backend == "faiss" else {}
            if not (path / "CURRENT").is_file():
                build_index(world.passages, path, backend=backend, show_progress=progress, **options)
            retriever = load_retriever(path)
            manifest["headroom"][name] = {split: measure_headroom(world, retriever, split=split)
                                          for split in SPLITS if world.split(split)}
    _write_manifest(paths["manifest"], manifest)
    return manifest


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    from s3_agents.locks import write_atomic

    write_atomic(path, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
