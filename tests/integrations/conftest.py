from __future__ import annotations

import pytest

from s3_agents import FaissRetriever, Generator, S3Searcher, load_demo_corpus
from s3_agents.testing import ScriptedClient

QUESTION = "What is the currency of Ketroul?"


def scripted_policy() -> ScriptedClient:
    """Search once for the currency, keep the first result, stop."""
    return ScriptedClient.one_search("Ketroul currency")


@pytest.fixture(scope="session")
def demo_faiss(minilm) -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, minilm)


@pytest.fixture()
def scripted_searcher(demo_faiss) -> S3Searcher:
    return S3Searcher(scripted_policy(), demo_faiss)


@pytest.fixture()
def scripted_generator() -> Generator:
    return Generator(ScriptedClient(lambda messages: "mobroun"))
