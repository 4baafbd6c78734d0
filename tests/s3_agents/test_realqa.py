"""Real QA in: each loader on real records (realqa_samples/, see its ATTRIBUTION.md), pooling, splits, oracle chains."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from s3_agents.errors import DataFileError
from s3_agents.realqa import measure_headroom, pool_records, read_qa_records
from s3_agents.worlds import SPLITS, load_world, uses_world_template
from tests.conftest import run_main

SAMPLES = Path(__file__).parent / "realqa_samples"
FILES = {"hotpotqa": ["hotpotqa_hf.jsonl", "hotpotqa_original.json"], "flashrag": ["flashrag.jsonl"],
         "musique": ["musique.json"], "2wiki": ["2wiki.json"]}


def _all_records() -> list:
    return [r for form, names in FILES.items() for name in names for r in read_qa_records(SAMPLES / name, form)]


@pytest.mark.parametrize(("form", "name", "ids"), [
    ("hotpotqa", "hotpotqa_hf.jsonl", ["5a8bba645542995e66a474e5", "5a73073d55429901807daf69",
                                       "5ac2a3c7554299218029dadb", "5ade28b15542997c77aded83",
                                       "5a79dae35542994f819ef0d3"]),
    ("hotpotqa", "hotpotqa_original.json", ["5a8326565542990548d0b194", "5a733bb45542992359bc32a0",
                                            "5abb06af5542992ccd8e7ebd"]),
    ("flashrag", "flashrag.jsonl", ["5a8bba645542995e66a474e5", "5ac2a3c7554299218029dadb"]),
    ("musique", "musique.json", ["2hop__116027_376978", "2hop__129962_69002", "3hop2__130734_798404_834843"]),
    ("2wiki", "2wiki.json", ["8813f87c0bdd11eba7f7acde48001122"]),
])
def test_each_loader_reads_its_real_records_with_their_supports(form: str, name: str, ids: list[str]) -> None:
    path = SAMPLES / name
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if name.endswith(".jsonl") \
        else json.loads(path.read_text(encoding="utf-8"))
    records = read_qa_records(path, form)
    assert [r.id for r in records] == ids
    for record, source in zip(records, raw):
        assert record.answers[0] == source.get("answer", (source.get("golden_answers") or [""])[0])
        assert len(record.supports) == len(record.queries) >= 2
        titles = {record.paragraphs[i][0] for i in record.supports}
        if form == "musique":                   # the decomposition's paragraphs are the supporting ones
            assert titles == {p["title"] for p in source["paragraphs"] if p["is_supporting"]}
            assert not any("#" in q for q in record.queries)
        else:
            facts = (source.get("metadata") or source)["supporting_facts"]
            assert titles == set(facts["title"] if isinstance(facts, dict) else [f[0] for f in facts])
        assert all(title and text for title, text in record.paragraphs)


def test_the_layouts_of_one_question_read_alike() -> None:
    hf = {r.id: r for r in read_qa_records(SAMPLES / "hotpotqa_hf.jsonl", "hotpotqa")}
    for record in read_qa_records(SAMPLES / "flashrag.jsonl", "flashrag"):
        same = hf[record.id]
        assert (record.question, record.answers, record.paragraphs, record.supports, record.queries) == \
               (same.question, same.answers, same.paragraphs, same.supports, same.queries)


def test_bridge_chains_start_from_the_entity_the_question_names() -> None:
    bass = read_qa_records(SAMPLES / "hotpotqa_hf.jsonl", "hotpotqa")[-1]  # "In what part of Scotland is Bass Rock"
    assert bass.queries == ("Bass Rock", "Tantallon Castle")                  # the data lists Tantallon first
    records = read_qa_records(SAMPLES / "hotpotqa_original.json", "hotpotqa")
    dawn = records[0]                       # supporting facts: Dawn Penn, then the song's paragraph twice
    first, second = (dawn.paragraphs[i] for i in dawn.supports)
    assert dawn.queries == ("Dawn Penn", "You Don't Love Me")             # the title's "(No, No, No)" dropped
    assert "You Don't Love Me" in first[1] and second[0] == "You Don't Love Me (No, No, No)"
    musique = read_qa_records(SAMPLES / "musique.json", "musique")[0]
    assert musique.queries[1] == "Raoul Walsh spouse"                      # "#1 spouse", #1 = Raoul Walsh
    wiki = read_qa_records(SAMPLES / "2wiki.json", "2wiki")[0]
    assert wiki.queries == ("Polish-Russian War", "Xawery Żuławski") and "evidences" in wiki.metadata
    # Sentences joined with one space: 2WikiMultihopQA's carry none, HotpotQA's carry their own.
    assert "a Polish film director. In 1995 he graduated" in dict(wiki.paragraphs)["Xawery Żuławski"]
    penn = dict(dawn.paragraphs)["Dawn Penn"]
    assert penn.startswith("Dawn Penn (born in 1952 in Kingston, Jamaica) is a Jamaican reggae singer. She first")


def test_pooling_dedupes_passages_and_splits_deterministically_and_disjointly() -> None:
    records = _all_records()
    world = pool_records(records, seed=1, shares=(1, 1, 1))
    assert len({(p.title, p.text) for p in world.passages}) == len(world.passages)
    assert [p.id for p in world.passages] == [str(i) for i in range(1, len(world.passages) + 1)]
    ids = [q["id"] for q in world.questions]
    assert len(ids) == len(set(ids)) == 11            # 14 records: 2 FlashRAG repeats and 1 "yes" left out
    by_split = {s: {q["id"] for q in world.split(s)} for s in SPLITS}
    assert all(by_split.values()) and sum(map(len, by_split.values())) == len(ids)
    copies = [replace(r, id=f"{r.id}-copy") for r in records]    # same paragraphs under other question ids
    doubled = pool_records(records + copies, seed=1, shares=(1, 1, 1))
    assert doubled.passages == world.passages and len(doubled.questions) == 2 * len(ids)
    again = pool_records(list(reversed(records)), seed=1, shares=(1, 1, 1))
    assert {q["id"]: q["split"] for q in again.questions} == {q["id"]: q["split"] for q in world.questions}
    assert {q["id"]: q["split"] for q in pool_records(records, seed=2, shares=(1, 1, 1)).questions} != \
           {q["id"]: q["split"] for q in world.questions}
    passages = {p.id: p for p in world.passages}
    source = {r.id: r for r in records}
    for q in world.questions:                        # the supporting ids resolve to the supporting paragraphs
        r = source[q["id"]]
        assert [passages[hop["passage_id"]].title for hop in q["chain"]] == [r.paragraphs[i][0] for i in r.supports]
        assert set(q["supporting_ids"]) == {hop["passage_id"] for hop in q["chain"]}
    musique = read_qa_records(SAMPLES / "musique.json", "musique")
    mixed = pool_records(read_qa_records(SAMPLES / "hotpotqa_hf.jsonl", "hotpotqa"), train_only=musique,
                         yes_no=True, shares=(0, 1, 1))
    assert {q["split"] for q in mixed.questions if q["source"] == "musique"} == {"train"}
    assert not {q["split"] for q in mixed.questions if q["source"] == "hotpotqa"} & {"train"}
    assert "5ade28b15542997c77aded83" in {q["id"] for q in mixed.questions}        # the "yes" question, kept


def test_a_malformed_record_names_the_file_line_and_record(tmp_path: Path) -> None:
    records = json.loads((SAMPLES / "hotpotqa_original.json").read_text(encoding="utf-8"))
    del records[1]["supporting_facts"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records, indent=1), encoding="utf-8")
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if records[1]["_id"] in text)
    with pytest.raises(DataFileError, match=r"bad\.json, line \d+: record 2 \(5a733bb45542992359bc32a0\): missing "
                                            r"field 'supporting_facts'") as caught:
        read_qa_records(bad, "hotpotqa")
    assert caught.value.line_no <= line                  # the line where record 2 starts
    lines = (SAMPLES / "hotpotqa_hf.jsonl").read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], lines[1][:-40], lines[2]]) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.jsonl, line 2: not JSON"):
        read_qa_records(broken, "hotpotqa")
    truncated = tmp_path / "truncated.json"                     # every record whole, the list never closed
    truncated.write_text(json.dumps(records[:1], indent=1).rstrip()[:-1], encoding="utf-8")
    with pytest.raises(DataFileError, match="truncated"):
        read_qa_records(truncated, "hotpotqa")
    anonymous = tmp_path / "anonymous.jsonl"
    anonymous.write_text(json.dumps({k: v for k, v in json.loads(lines[0]).items() if k != "id"}) + "\n")
    with pytest.raises(DataFileError, match=r"anonymous\.jsonl, line 1: record 1: no question id"):
        read_qa_records(anonymous, "hotpotqa")
    with pytest.raises(DataFileError, match="metadata holds no paragraphs"):
        plain = tmp_path / "nq.jsonl"
        plain.write_text(json.dumps({"id": "1", "question": "who?", "golden_answers": ["a"]}) + "\n")
        read_qa_records(plain, "flashrag")


def test_oracle_queries_retrieve_their_supports_on_real_records(minilm) -> None:
    from s3_agents.retrievers import BM25Retriever, FaissRetriever

    world = pool_records(_all_records(), shares=(0, 0, 1))
    assert not any(uses_world_template(hop["query"]) for q in world.questions for hop in q["chain"])
    for retriever in (FaissRetriever.from_passages(world.passages, minilm),
                      BM25Retriever.from_passages(world.passages)):
        headroom = measure_headroom(world, retriever, split="test", ks=(1, 3), oracle_k=2)
        assert headroom["questions"] == 11
        assert headroom["oracle_support_recall@2"] >= 0.9, headroom         # 95 passages: at most 2 hops missed
        assert headroom["naive_support_recall@3"] >= headroom["naive_support_recall@1"]


def test_s3_data_hotpotqa_writes_a_world_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "real"
    code, stdout, err = run_main(capsys, "data", "hotpotqa", str(SAMPLES / "hotpotqa_hf.jsonl"),
                                 str(SAMPLES / "hotpotqa_original.json"), str(out), "--train-extra",
                                 f"musique={SAMPLES / 'musique.json'}", "--shares", "0,1,1", "--embedder", "hashing")
    assert code == 0, err
    world = load_world(out)
    assert len(world.questions) == 10 and {q["split"] for q in world.questions} == set(SPLITS)
    manifest = json.loads((out / "world.json").read_text())
    assert set(manifest["headroom"]) == {"dense", "bm25"} and "oracle_support_recall@10" in stdout
    assert manifest["headroom"]["bm25"]["dev"]["questions"] == len(world.split("dev"))
    code, _, err = run_main(capsys, "data", "hotpotqa", str(SAMPLES / "hotpotqa_hf.jsonl"), str(out),
                            "--train-extra", "nope.json")
    assert code == 2 and "FORMAT=PATH" in err
