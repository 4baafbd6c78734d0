"""Fixtures for training tests: SmolLM2 through transformers, a token server, the demo retriever."""

from __future__ import annotations

import pytest

from s3_agents import FaissRetriever, HashingEmbedder, load_demo_corpus


@pytest.fixture(scope="session")
def policy_model(smollm2_hf):
    from s3_agents.training.local_server import load_policy_model

    return load_policy_model(smollm2_hf)


@pytest.fixture(scope="session")
def hashing_retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


@pytest.fixture()
def scripted_server():
    """verl's ``generate`` answering from a script (each reply tokenised as a model would have written it)."""
    from s3_agents.training.trajectories import ReplayServer

    return ReplayServer
