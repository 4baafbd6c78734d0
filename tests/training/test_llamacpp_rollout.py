"""Rollouts on llama.cpp: the adapter reloads after an update, and the engine's log-probs stay close to torch's."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
import torch

from s3_agents.llm import smollm2_gguf_path
from s3_agents.protocol import action_grammar
from s3_agents.trained import trained_config, trained_searcher_dir

pytestmark = pytest.mark.slow

PROMPT = ("Question: Which river flows through the birthplace of Vokri Krofei?\nDoc 1 (Title: Vokri Krofei) Vokri "
          "Krofei was born in Gritia.\nDoc 2 (Title: Gritia) Gritia is a port town.\nSelect, then search or stop.")


@pytest.fixture(scope="module")
def trained(smollm2_hf):
    """SmolLM2 (the GGUF's own weights, converted once per session) with the shipped searcher's adapter,
    trainable."""
    from peft import PeftModel

    from s3_agents.training.local_server import load_policy_model

    base, tokenizer = load_policy_model(smollm2_hf)
    return PeftModel.from_pretrained(base, str(trained_searcher_dir("world")), is_trainable=True).eval(), tokenizer


def prompt_ids(tokenizer) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_the_engine_samples_the_adapter_it_was_last_given(trained) -> None:
    from s3_agents.training.llamacpp_rollout import LlamaCppRolloutServer

    model, tokenizer = trained
    ids = prompt_ids(tokenizer)
    params = {"max_tokens": 40, "temperature": 0, "grammar": action_grammar(trained_config("world"))}
    server = LlamaCppRolloutServer(smollm2_gguf_path(), tokenizer, contexts=2)

    async def greedy() -> str:
        out = await server.generate("episode", prompt_ids=ids, sampling_params=params)
        return tokenizer.decode(out.token_ids, skip_special_tokens=True)

    try:
        base = asyncio.run(greedy())
        server.load_adapter(model)
        searcher = asyncio.run(greedy())
        assert searcher != base and searcher.startswith("<important_info>")
        moved = copy.deepcopy(model)                      # an "update": the adapter's B factors change
        with torch.no_grad():
            for name, p in moved.named_parameters():
                if "lora_B" in name:
                    p.mul_(-3.0)
        server.load_adapter(moved)
        assert asyncio.run(greedy()) not in (searcher, base)
        server.load_adapter(trained_searcher_dir("world"))       # a peft folder, converted on the way
        assert asyncio.run(greedy()) == searcher
        assert len(list(Path(server._workdir.name).glob("*.gguf"))) == 1      # older versions are removed
    finally:
        server.close()


def test_the_engines_log_probs_stay_within_a_measured_gap_of_torch(trained) -> None:
    """The sampler's distribution (Q4 weights, 8-bit activations) against the torch policy PPO trains: sampled
    tokens at temperature 1, no grammar, scored by both. PPO's ratio only ever uses the torch side."""
    from s3_agents.training.llamacpp_rollout import LlamaCppRolloutServer
    from s3_agents.training.ppo import CpuPPO, PPOSettings, Rollout

    model, tokenizer = trained
    ids = prompt_ids(tokenizer)
    server = LlamaCppRolloutServer(smollm2_gguf_path(), tokenizer, contexts=1, seed=3)
    ppo = CpuPPO.__new__(CpuPPO)
    ppo.settings, ppo.tokenizer, ppo.device = PPOSettings(temperature=1.0), tokenizer, torch.device("cpu")
    gaps = []
    try:
        server.load_adapter(model)
        for i in range(3):
            out = asyncio.run(server.generate(f"s{i}", prompt_ids=ids, sampling_params={"max_tokens": 48,
                                                                                       "temperature": 1.0}))
            engine = torch.tensor(server.log_probs(ids, out.token_ids))
            with torch.no_grad():
                torch_lp = ppo._forward(model, Rollout(ids, out.token_ids, [1] * len(out.token_ids), 0.0))[0][0]
            gaps.append((engine - torch_lp).abs())
    finally:
        server.close()
    gap = torch.cat(gaps)
    assert len(gap) >= 60
    # Measured here (63 tokens): mean 0.047 nats, median 0.003, largest 0.29 (docs/training.md); the bound leaves
    # room for other CPUs' kernels.
    assert float(gap.mean()) < 0.1 and float(gap.max()) < 1.0, (float(gap.mean()), float(gap.max()))
