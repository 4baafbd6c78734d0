"""Data prep: QA JSONL to verl parquet, loaded by verl's own RL dataset class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from verl.utils.dataset.rl_dataset import RLHFDataset

from s3_agents.qa import QAExample, is_yes_no, load_qa
from s3_agents.rag_cache import RagCache, RagEntry
from s3_agents.training.data import prepare_dataset


def test_flashrag_lines_and_yes_no(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "Capital of X", "golden_answers": ["Y"], "data_source": "nq"}) + "\n")
    (item,) = load_qa(path)
    assert (item.question, item.answers, item.data_source) == ("Capital of X", ("Y",), "nq")
    assert is_yes_no(("Yes",)) and is_yes_no(("false.",)) and not is_yes_no(("Yesenia",))
    assert not is_yes_no(("Norway", "NO", "no"))             # an alias "no" does not make a yes/no question


def test_rag_fails_filter(tmp_path, demo_questions):
    items = [QAExample(q.question, q.answers) for q in demo_questions[:6]]
    cache = RagCache(":memory:", retriever_id="r", generator_id="g", k=3)
    for i, item in enumerate(items[:5]):
        cache.put(item.question, RagEntry("x", float(i % 2), 0.0))   # 0, 1, 0, 1, 0; the 6th has none
    report = prepare_dataset(items, tmp_path / "train.parquet", rag_cache=cache, drop_rag_successes=True,
                             show_progress=False)
    assert (report.written, report.rag_succeeded, report.no_baseline) == (3, 2, 1)
    with pytest.raises(ValueError, match="needs a rag_cache"):
        prepare_dataset(items, tmp_path / "x.parquet", drop_rag_successes=True)


def test_supporting_ids_of_real_data_reach_the_reward(tmp_path):
    """Questions written by `s3 data hotpotqa` carry their supporting passage ids into the reward's ground truth."""
    from s3_agents.realqa import pool_records, read_qa_records
    from s3_agents.training.local import read_rows
    from s3_agents.worlds import write_world

    samples = Path(__file__).parent.parent / "s3_agents" / "realqa_samples"
    world = pool_records(read_qa_records(samples / "hotpotqa_hf.jsonl", "hotpotqa"), shares=(1, 0, 0))
    items = load_qa(write_world(world, tmp_path / "real")["train"])
    prepare_dataset(items, tmp_path / "train.parquet", show_progress=False)
    truths = {row["reward_model"]["ground_truth"]["question"]: row["reward_model"]["ground_truth"]
              for row in read_rows(tmp_path / "train.parquet")}
    assert len(truths) == len(world.questions) == 4
    for q in world.questions:
        assert truths[q["question"]]["supporting_ids"] == q["supporting_ids"]
    plain = prepare_dataset([QAExample("Who?", ("X",))], tmp_path / "plain.parquet", show_progress=False)
    assert "supporting_ids" not in read_rows(plain.path)[0]["reward_model"]["ground_truth"]


def test_parquet_loads_in_verl_rl_dataset(tmp_path, demo_questions, policy_model):
    items = [QAExample(q.question, q.answers) for q in demo_questions[:8]]
    items.append(QAExample("Is Ketroul an island?", ("yes",)))
    report = prepare_dataset(items, tmp_path / "train.parquet", data_source="demo", show_progress=False)
    assert report.written == 8 and report.yes_no == 1
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 256, "return_raw_chat": True,
                               "filter_overlong_prompts": True, "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset(str(report.path), policy_model[1], config)
    assert len(dataset) == 8
    sample = dataset[3]
    question = items[3].question if items[3].question.endswith("?") else items[3].question + "?"
    assert sample["raw_prompt"] == [{"role": "user", "content": question}]
    assert sample["agent_name"] == "s3_searcher" and sample["data_source"] == "demo"
    assert list(sample["reward_model"]["ground_truth"]["target"]) == list(items[3].answers)
    assert sample["extra_info"]["question"] == question and sample["index"] == 3
