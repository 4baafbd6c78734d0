"""Fixtures for training tests: SmolLM2 through transformers, a token server, the demo retriever."""

from __future__ import annotations

import pytest
import torch

from s3_agents import FaissRetriever, HashingEmbedder, load_demo_corpus


@pytest.fixture(scope="session")
def policy_model(smollm2_hf):
    from s3_agents.training.local_server import load_policy_model

    return load_policy_model(smollm2_hf)


@pytest.fixture(scope="session")
def tiny_policy(smollm2_hf):
    """A random-weight two-layer Llama with SmolLM2's tokenizer: the mechanics of PPO, GRPO and LoRA in
    milliseconds (what the real SmolLM2 learns is tested end to end by test_local.py and the notebooks)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_hf)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="session")
def hashing_retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


@pytest.fixture()
def scripted_server():
    """verl's ``generate`` answering from a script (each reply tokenised as a model would have written it)."""
    from s3_agents.training.trajectories import ReplayServer

    return ReplayServer
