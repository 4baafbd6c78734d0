from __future__ import annotations

import filecmp
import re
from pathlib import Path

from s3_agents.corpus import demo_corpus_path, demo_questions_path
from s3_agents.worlds import build_demo_world, write_demo_files


def test_shipped_files_are_the_generator_output(tmp_path: Path) -> None:
    corpus, questions = write_demo_files(tmp_path)
    assert filecmp.cmp(corpus, demo_corpus_path(), shallow=False)
    assert filecmp.cmp(questions, demo_questions_path(), shallow=False)


def test_size_and_unique_ids(demo_corpus, demo_questions) -> None:
    assert 200 <= len(demo_corpus) <= 600
    assert len({p.id for p in demo_corpus}) == len(demo_corpus)
    assert len({q.question for q in demo_questions}) == len(demo_questions) >= 100
    assert {q.metadata["hops"] for q in demo_questions} >= {1, 2, 3, 4}


def test_answers_are_supported_by_their_passages(demo_corpus, demo_questions) -> None:
    by_id = {p.id: p for p in demo_corpus}
    for q in demo_questions:
        support = [by_id[i] for i in q.metadata["supporting_ids"]]
        assert len(support) == q.metadata["hops"], q
        text = " ".join(p.contents for p in support)
        assert any(re.search(re.escape(a), text) for a in q.answers), q


def test_multi_hop_chain_is_not_in_one_passage(demo_corpus, demo_questions) -> None:
    """A 2+-hop answer must not sit in the passage that names the question's subject."""
    by_id = {p.id: p for p in demo_corpus}
    for q in demo_questions:
        if q.metadata["hops"] >= 2:
            first = by_id[q.metadata["supporting_ids"][0]]
            assert q.answers[0] not in first.contents, q


def test_generator_is_deterministic() -> None:
    a, b = build_demo_world(), build_demo_world()
    assert a.passages == b.passages and a.questions == b.questions
    assert build_demo_world(seed=1).passages != a.passages
