"""The benchmark world: deterministic, disjoint splits, chains that hold, headroom measured with MiniLM."""

from __future__ import annotations

import filecmp
import json

import pytest

from s3_agents.retrievers import FaissRetriever
from s3_agents.worlds import (
    QUESTION_TYPES,
    SPLITS,
    build_world,
    default_world_dir,
    load_world,
    measure_world,
    write_world,
)


@pytest.fixture(scope="module")
def small_world():
    return build_world(600, seed=3)


def test_generator_is_deterministic(small_world) -> None:
    again = build_world(600, seed=3)
    assert again.passages == small_world.passages and again.questions == small_world.questions
    assert build_world(600, seed=4).passages != small_world.passages


def test_splits_are_disjoint_and_cover_every_question(small_world) -> None:
    splits = {name: {q["question"] for q in small_world.split(name)} for name in SPLITS}
    assert all(splits.values())
    assert not splits["train"] & splits["dev"] and not splits["train"] & splits["test"]
    assert not splits["dev"] & splits["test"]
    assert sum(map(len, splits.values())) == len(small_world.questions)
    assert len({q["id"] for q in small_world.questions}) == len(small_world.questions)


def test_a_sample_stands_for_its_split(small_world) -> None:
    train = small_world.split("train")
    n = len(train) // 4
    sample = small_world.sample("train", n)
    assert sample == small_world.sample("train", n) and len(sample) == n
    assert {q["id"] for q in sample} <= {q["id"] for q in train}
    # The split lists its questions type by type: its first quarter misses types that a sample has.
    assert len({q["type"] for q in sample}) > len({q["type"] for q in train[:n]})
    assert len(small_world.sample("test")) == len(small_world.split("test"))


def test_size_types_and_hops(small_world) -> None:
    assert 570 <= len(small_world.passages) <= 630
    assert {q["type"] for q in small_world.questions} == set(QUESTION_TYPES)
    assert {q["hops"] for q in small_world.questions} == {2, 3, 4}
    for q in small_world.questions:
        assert q["hops"] == QUESTION_TYPES[q["type"]] == len(q["chain"]) == len(q["supporting_ids"])


def test_chains_hold(small_world) -> None:
    """Each hop's passage exists; the answer is in a supporting passage and never in the question."""
    by_id = {p.id: p for p in small_world.passages}
    for q in small_world.questions:
        texts = [by_id[hop["passage_id"]].text for hop in q["chain"]]
        assert any(q["answers"][0] in text for text in texts), q
        assert q["answers"][0] not in q["question"]
        if q["type"] != "older_founder_city":   # a bridge: the answer sits in the last hop, not the first
            assert q["answers"][0] in texts[-1] and q["answers"][0] not in texts[0], q


def test_write_and_load_round_trip(small_world, tmp_path) -> None:
    paths = write_world(small_world, tmp_path)
    loaded = load_world(tmp_path)
    assert loaded.passages == small_world.passages
    assert [(q["id"], q["split"], q["chain"]) for q in loaded.questions] == \
        sorted([(q["id"], q["split"], q["chain"]) for q in small_world.questions],
               key=lambda row: (SPLITS.index(row[1]), [q["id"] for q in small_world.questions].index(row[0])))
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["passages"] == len(small_world.passages)
    with pytest.raises(FileNotFoundError, match="world.json"):
        load_world(tmp_path / "nowhere")


def test_shipped_world_is_the_generator_output(tmp_path) -> None:
    paths = write_world(build_world(), tmp_path)
    for name in ("corpus", "train", "dev", "test", "manifest"):
        assert filecmp.cmp(paths[name], default_world_dir() / paths[name].name, shallow=False), name


def test_headroom_with_minilm(small_world, minilm) -> None:
    """Naive top-3 rarely holds the answer; each chain query finds its hop's passage in the top 10."""
    report = measure_world(small_world, FaissRetriever.from_passages(small_world.passages, minilm))
    assert report["naive_answer_in_context"] <= 0.5
    assert report["oracle_hop_recall"] >= 0.9
    assert report["oracle_answer_in_context"] >= 0.9
    assert set(report["by_type"]) <= set(QUESTION_TYPES)


def test_world_template_detector_knows_every_hop_and_the_reported_leaks(small_world) -> None:
    from s3_agents.worlds import uses_world_template

    assert all(uses_world_template(hop["query"]) for q in small_world.questions for hop in q["chain"])
    # What the world-trained searcher asked of real HotpotQA questions (issue 24), and what it should ask.
    assert uses_world_template("Where is Scotland?") and uses_world_template("Where was Lucille Wood Smith born?")
    assert not uses_world_template("Within You Without You songwriter")
