"""Launcher and Hydra configs, tested on a CPU up to the point where verl needs a GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf
from verl.utils.config import validate_config

from s3_agents import HashingEmbedder, build_index, load_demo_corpus
from s3_agents.qa import QAExample
from s3_agents.rag_cache import RagCache
from s3_agents.training.data import prepare_dataset
from s3_agents.training.launch import PRESETS, PreflightError, TrainJob, compose_config, launch, preflight
from s3_agents.training.paths import CONFIG_DIR
from tests.conftest import cli_env, free_port


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_questions, smollm2_hf):
    root = tmp_path_factory.mktemp("train-setup")
    items = [QAExample(q.question, q.answers) for q in demo_questions[:10]]
    train = prepare_dataset(items, root / "train.parquet", show_progress=False).path
    index = build_index(load_demo_corpus().passages, root / "index", embedder=HashingEmbedder(),
                        show_progress=False).parent
    cache = root / "rag.sqlite"
    RagCache(cache, retriever_id="x", generator_id="y").close()
    return {"root": root, "train": str(train), "index": str(index), "cache": str(cache), "model": str(smollm2_hf)}


def job(setup, **kwargs) -> TrainJob:
    args = {"model": setup["model"], "train_files": [setup["train"]], "retriever": setup["index"],
            "generator_url": f"http://127.0.0.1:{free_port()}/v1", "generator_model": "qwen-14b",
            "rag_cache": setup["cache"], "output_dir": str(setup["root"] / "run")}
    return TrainJob(**{**args, **kwargs})


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_compose_and_pass_verls_validation(setup, preset):
    config = compose_config(job(setup, preset=preset))
    validate_config(config, use_reference_policy=True, use_critic=True)
    assert config.algorithm.adv_estimator == "gae" and config.algorithm.use_kl_in_reward
    assert config.algorithm.kl_ctrl.kl_coef == 0.001
    assert config.actor_rollout_ref.actor.optim.lr == 1e-6 and config.critic.optim.lr == 1e-5
    assert config.actor_rollout_ref.rollout.temperature == 0.6
    assert config.actor_rollout_ref.rollout.agent.default_agent_loop == "s3_searcher"
    assert config.reward.custom_reward_function.reward_kwargs.retriever == setup["index"]
    missing = {k for k in OmegaConf.missing_keys(config) if not k.startswith("reward.reward_model.")}  # disabled
    assert not missing, "every ??? of ours is filled by the job"
    if preset == "s3_ppo":
        assert config.data.train_batch_size == 120 and config.trainer.n_gpus_per_node == 5
    else:
        assert config.trainer.n_gpus_per_node == 1


def test_lora_rank_and_warm_start_adapter_reach_verls_config(setup, tmp_path):
    adapter = tmp_path / "adapter"
    config = compose_config(job(setup, lora_rank=16, init_adapter=str(adapter)))
    model = config.actor_rollout_ref.model
    assert (model.lora_rank, model.lora_alpha, model.lora_adapter_path) == (16, 32, str(adapter.resolve()))
    assert compose_config(job(setup)).actor_rollout_ref.model.lora_rank == 0     # the presets: full model


def test_preflight_reports_every_missing_piece_at_once(setup, tmp_path):
    bad = job(setup, train_files=[str(tmp_path / "nope.parquet")], retriever=str(tmp_path / "no-index"),
              rag_cache=str(tmp_path / "none.sqlite"))
    problems = "\n".join(preflight(bad))
    for expected in ("training data not found", "no index at", "RAG cache not found", "vLLM is not installed",
                     "no CUDA GPU here", "generator endpoint", bad.generator_url):
        assert expected in problems


def test_preflight_names_a_retrieval_server_that_is_down(setup):
    url = f"http://127.0.0.1:{free_port()}/retrieve"
    problems = preflight(job(setup, retriever=url), check_gpu=False)
    assert any("retriever not reachable" in p and url.removesuffix("/retrieve") in p for p in problems)


def test_run_refuses_before_anything_starts(s3, setup):
    result = s3("train", "run", "--model", setup["model"], "--train", setup["train"],
                     "--retriever", setup["index"], "--generator-url", f"http://127.0.0.1:{free_port()}/v1",
                     "--generator-model", "g", "--rag-cache", setup["cache"], "--output-dir",
                     str(setup["root"] / "refused"))
    assert result.code == 1
    assert "cannot start training" in result.err and "no CUDA GPU" in result.err
    assert not (setup["root"] / "refused").exists()
    with pytest.raises(PreflightError):
        launch(job(setup))


def test_dry_run_writes_the_agent_loop_and_verl_accepts_the_command(s3, setup):
    run_dir = setup["root"] / "dry"
    result = s3("train", "run", "--model", setup["model"], "--train", setup["train"],
                     "--retriever", setup["index"], "--generator-url", "http://127.0.0.1:9/v1",
                     "--generator-model", "g", "--rag-cache", setup["cache"], "--output-dir", str(run_dir),
                     "--search", "5-3-4", "--steps", "3", "--dry-run")
    assert result.code == 0, result.err
    assert "verl.trainer.main_ppo" in result.err
    entries = yaml.safe_load((run_dir / "agent_loop.yaml").read_text())
    assert entries[0]["retriever"] == setup["index"] and entries[0]["search"] == "5-3-4"
    # verl's own entry point composes the same config (Hydra prints it and stops before any work).
    dry = job(setup, output_dir=str(run_dir), search="5-3-4", steps=3)
    command = [*dry.command(), "--cfg", "job"]
    printed = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=300)
    assert printed.returncode == 0, printed.stderr[-3000:]
    config = yaml.safe_load(printed.stdout)
    assert config["trainer"]["total_training_steps"] == 3
    assert config["actor_rollout_ref"]["rollout"]["agent"]["agent_loop_config_path"] == str(run_dir / "agent_loop.yaml")
    assert config["reward"]["custom_reward_function"]["path"].endswith("training/reward.py")


def test_agent_loop_yaml_is_the_documented_default():
    (entry,) = yaml.safe_load((CONFIG_DIR / "agent_loop.yaml").read_text())
    assert entry["_target_"] == "s3_agents.training.agent_loop.S3AgentLoop" and entry["search"] == "8-3-3"
    assert sys.modules.get("vllm") is None
