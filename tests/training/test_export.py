"""Export: verl's FSDP checkpoint layout to a Hugging Face folder the core runs as its searcher."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from s3_agents import S3Searcher, SearchConfig, TransformersClient
from s3_agents.rag_cache import RagCache, RagEntry
from s3_agents.training.export import export_policy, find_actor_checkpoint, save_policy


def fake_run(tmp_path, model, model_dir, step: int = 20):
    """A verl run folder as FSDPCheckpointManager leaves it (world size 1): shards, fsdp_config, huggingface/."""
    actor = tmp_path / "run" / "checkpoints" / f"global_step_{step}" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    torch.save(model.state_dict(), actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    for path in model_dir.iterdir():                 # config, generation config, tokenizer, chat template
        if path.suffix != ".safetensors":
            shutil.copy(path, actor / "huggingface" / path.name)
    (tmp_path / "run" / "checkpoints" / "latest_checkpointed_iteration.txt").write_text(str(step))
    return tmp_path / "run" / "checkpoints"


@pytest.mark.slow
def test_fsdp_checkpoint_exports_and_runs_as_the_searcher(tmp_path, tiny_policy, tiny_dir, hashing_retriever):
    """The export's mechanics on the tiny random Llama (verl's merger, the folder the core loads)."""
    model, _ = tiny_policy
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    trained["model.norm.weight"] += 0.25          # a "trained" weight to find again after the merge
    model_copy = type(model)(model.config)
    model_copy.load_state_dict(trained)
    checkpoints = fake_run(tmp_path, model_copy, tiny_dir)
    assert find_actor_checkpoint(checkpoints).name == "actor"

    out = export_policy(checkpoints, tmp_path / "searcher-hf")
    client = TransformersClient(str(out))
    exported = client._lm.state_dict()["model.norm.weight"].float()
    assert torch.allclose(exported, trained["model.norm.weight"], atol=2e-2)     # verl's merger writes bf16
    assert not torch.allclose(exported, model.state_dict()["model.norm.weight"], atol=0.1)
    searcher = S3Searcher(client, hashing_retriever, SearchConfig.from_name("3-1-1", initial_k=2, max_new_tokens=16))
    state = searcher.search("Who founded Gritia?")
    assert state["outputs"] and state["context"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no verl actor checkpoint"):
        find_actor_checkpoint(tmp_path)


@pytest.mark.slow
def test_cli_export_of_a_saved_cpu_policy(s3, tmp_path, tiny_policy):
    model, tokenizer = tiny_policy
    folder = save_policy(model, tokenizer, tmp_path / "cpu-trained")
    result = s3("train", "export", str(folder), str(tmp_path / "copy"))
    assert result.code == 0, result.err
    assert (tmp_path / "copy" / "config.json").is_file() and "TransformersClient" in result.out
    # The exported folder is a policy `s3 eval` takes as it is (searcher and, here, generator too).
    evaluated = s3("eval", "--methods", "s3", "--policy-hf", str(tmp_path / "copy"), "--limit", "1",
                        "--config", "2-1-1", "--turn-tokens", "16", "--no-judge", "--out", str(tmp_path / "eval"))
    assert evaluated.code == 0, evaluated.err
    row = json.loads((tmp_path / "eval" / "results.jsonl").read_text())
    assert row["method"] == "s3" and row["turns"] >= 1 and row["prompt_tokens"] > 0
    assert "| s3 |" in evaluated.out


def test_cli_prepare(s3, tmp_path):
    questions = tmp_path / "qa.jsonl"
    questions.write_text('{"question": "Who founded Gritia", "answers": ["Kaemia Tritrir"]}\n'
                         '{"question": "Is Gritia old?", "answers": ["no"]}\n')
    result = s3("train", "prepare", str(questions), "--out", str(tmp_path / "train.parquet"))
    assert result.code == 0, result.err
    assert "1 of 2 questions written" in result.out and "1 yes/no" in result.out
    bad = s3("train", "prepare", str(questions), "--rag-fails-only")
    assert bad.code == 2 and "--rag-cache" in bad.err
    # With a cache whose rows name the index and generator, RAG successes are dropped.
    (tmp_path / "index").mkdir()
    cache = RagCache(tmp_path / "rag.sqlite", retriever_id=RagCache.retriever_key(tmp_path / "index"),
                     generator_id="g")
    cache.put("Who founded Gritia", RagEntry("Kaemia Tritrir", 1.0, 1.0))
    cache.close()
    kept = s3("train", "prepare", str(questions), "--out", str(tmp_path / "f.parquet"), "--rag-fails-only",
                   "--rag-cache", str(tmp_path / "rag.sqlite"), "--index", str(tmp_path / "index"),
                   "--generator-model", "g")
    assert kept.code == 0, kept.err
    assert "0 of 2 questions written" in kept.out and "1 answered by naive RAG" in kept.out
