"""The s3_searcher verl agent loop: real verl classes, our search graph, SmolLM2 through transformers."""

from __future__ import annotations

import asyncio

import hydra
import pytest
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, DictConfigWrap, _agent_loop_registry
from verl.utils.dataset.rl_dataset import RLHFDataset

from s3_agents.training.agent_loop import S3AgentLoop
from s3_agents.training.local_server import TransformersServer
from s3_agents.training.paths import CONFIG_DIR

QUESTION = "Who founded Gritia?"
SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": -1, "logprobs": True}


def row(question: str = QUESTION) -> dict:
    return {"raw_prompt": [{"role": "user", "content": question}], "extra_info": {"question": question},
            "data_source": "demo", "agent_name": "s3_searcher"}


def runs(mask: list[int]) -> list[tuple[int, int]]:
    """[start, end) spans of consecutive 1s."""
    spans, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            spans.append((start, i))
            start = None
    return spans


def test_registered_and_loadable_from_the_agent_loop_yaml(policy_model, hashing_retriever, tmp_path):
    """verl's worker reads the YAML into its registry and builds the loop with hydra: do the same."""
    assert _agent_loop_registry["s3_searcher"]["_target_"] == "s3_agents.training.agent_loop.S3AgentLoop"
    entries = OmegaConf.load(CONFIG_DIR / "agent_loop.yaml")
    entry = next(e for e in entries if e.name == "s3_searcher")
    model, tokenizer = policy_model
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": 1024, "response_length": 512}},
                               "data": {}})
    loop = hydra.utils.instantiate(entry, trainer_config=DictConfigWrap(config), server_manager=None,
                                   tokenizer=tokenizer, processor=None, hf_model_type="llama",
                                   dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                                   retriever=hashing_retriever)
    assert isinstance(loop, S3AgentLoop)
    assert loop.search_config.name == "8-3-3" and loop.max_obs_tokens == 1400


def test_missing_retriever_is_a_clear_error(policy_model, monkeypatch):
    monkeypatch.delenv("S3_RETRIEVER", raising=False)
    with pytest.raises(ValueError, match="needs a retriever"):
        S3AgentLoop.standalone(None, policy_model[1], retriever=None)


def test_scripted_episode_masks_exactly_the_model_tokens(policy_model, hashing_retriever, scripted_server):
    _, tokenizer = policy_model
    replies = ['<think>the founder</think><query>{"query": "Gritia founded by"}</query>',
               "<important_info>[1]</important_info><search_complete>True</search_complete>"]
    server = scripted_server(tokenizer, replies)
    loop = S3AgentLoop.standalone(server, tokenizer, retriever=hashing_retriever, search="3-1-2", initial_k=2,
                                  prompt_length=1024, response_length=1024)
    out = asyncio.run(loop.run(SAMPLING, **row()))
    state = loop.last_state

    assert isinstance(out, AgentLoopOutput)
    assert out.extra_fields["s3_stop_reason"] == "complete" and out.extra_fields["s3_searches"] == 1
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs)
    # The prompt is the chat template of the first message; prompt + response is the whole conversation.
    first = tokenizer.apply_chat_template(state["messages"][:1], add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(out.prompt_ids) == first
    whole = tokenizer.apply_chat_template(state["messages"], tokenize=False)
    assert tokenizer.decode(out.prompt_ids + out.response_ids) == whole
    # Mask 1 covers exactly the generated ids: two spans, one per reply, and nothing else.
    spans = runs(out.response_mask)
    assert [tokenizer.decode(out.response_ids[a:b], skip_special_tokens=True) for a, b in spans] == replies
    # The second generation was asked with the first one's ids, as generated, followed by the documents.
    first_ids = tokenizer.encode(replies[0], add_special_tokens=False)
    assert server.prompts[1][len(out.prompt_ids):len(out.prompt_ids) + len(first_ids)] == first_ids
    inserted = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask) if m == 0])
    assert "<information>" in inserted and "Doc 1" in inserted
    # The selected passage reaches the reward through extra_fields.
    block = state["blocks"][1]
    assert out.extra_fields["s3_context"][0]["id"] == block["passages"][0].id
    assert out.extra_fields["s3_queries"] == ["Gritia founded by"]


def test_observations_are_cut_to_max_obs_tokens(policy_model, hashing_retriever, scripted_server):
    _, tokenizer = policy_model
    replies = ['<query>{"query": "Gritia"}</query>', "<search_complete>True</search_complete>"]
    server = scripted_server(tokenizer, replies)
    loop = S3AgentLoop.standalone(server, tokenizer, retriever=hashing_retriever, search="8-3-1", max_obs_tokens=40)
    out = asyncio.run(loop.run(SAMPLING, **row()))
    assert out.extra_fields["s3_truncated_observations"] == 1
    observation = loop.last_state["messages"][2]["content"]        # the graph's message is whole ...
    assert "Doc 8" in observation
    inserted = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask) if m == 0])
    assert "...(truncated)" in inserted and "Doc 8" not in inserted   # ... the trained tokens are cut


@pytest.mark.slow
def test_smollm2_episode_through_transformers_server(policy_model, hashing_retriever):
    """A real model: ids decode back to the transcript, the mask covers its spans, lengths hold."""
    model, tokenizer = policy_model
    server = TransformersServer(model, tokenizer, seed=0)
    loop = S3AgentLoop.standalone(server, tokenizer, retriever=hashing_retriever, search="3-2-2", initial_k=2,
                                  max_turn_tokens=40, prompt_length=1024, response_length=1024)
    out = asyncio.run(loop.run(SAMPLING, **row()))
    state = loop.last_state

    assert tokenizer.decode(out.prompt_ids + out.response_ids) == tokenizer.apply_chat_template(
        state["messages"], tokenize=False)
    spans = runs(out.response_mask)
    assert len(spans) == len(state["outputs"])
    for (a, b), text in zip(spans, state["outputs"]):
        assert b - a <= 40
        decoded = tokenizer.decode(out.response_ids[a:b], skip_special_tokens=True)
        assert decoded == text or decoded + "</query>" == text
    assert all(lp <= 0 for lp in out.response_logprobs)
    assert out.num_turns == len(state["messages"])
    # SmolLM2 is not a trained searcher: its broken turns end as invalid actions, never as exceptions.
    assert state["invalid"] + len(state["queries"]) + (state["pending"].kind == "complete") >= 1


@pytest.mark.slow
def test_response_length_ends_the_episode(policy_model, hashing_retriever):
    model, tokenizer = policy_model
    server = TransformersServer(model, tokenizer, seed=1)
    loop = S3AgentLoop.standalone(server, tokenizer, retriever=hashing_retriever, search="3-2-3", initial_k=2,
                                  max_turn_tokens=48, prompt_length=1024, response_length=96)
    out = asyncio.run(loop.run(SAMPLING, **row("What is the currency of Ketroul?")))
    assert len(out.response_ids) <= 96 and len(out.response_mask) == len(out.response_ids)
    # 48 generated + the feedback message overflow 96 tokens: the next turn has no room, the episode ends.
    assert out.extra_fields["s3_stop_reason"] == "response_length"
    assert len(out.response_ids) == 96 and sum(out.response_mask) <= 48
    assert out.extra_fields["s3_context"], "a cut-off episode still hands its context to the reward"


def test_transformers_server_stop_strings_like_vllm(policy_model):
    model, tokenizer = policy_model
    server = TransformersServer(model, tokenizer)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    base = {"temperature": 0.0, "max_tokens": 24, "stop": ["."], "logprobs": True}
    keep = {**base, "include_stop_str_in_output": True}
    kept = asyncio.run(server.generate("r", prompt_ids=ids, sampling_params=keep))
    dropped = asyncio.run(server.generate("r", prompt_ids=ids, sampling_params=base))
    kept_text = tokenizer.decode(kept.token_ids, skip_special_tokens=True)
    assert kept_text.endswith(".") and "Paris" in kept_text
    assert "." not in tokenizer.decode(dropped.token_ids, skip_special_tokens=True)
    assert kept.token_ids[:len(dropped.token_ids)] == dropped.token_ids
    assert len(kept.log_probs) == len(kept.token_ids) and all(lp <= 0 for lp in kept.log_probs)


def test_standalone_runs_in_process_retrieval_inline(policy_model, hashing_retriever):
    import threading

    from s3_agents.training.agent_loop import InlineRetriever

    loop = S3AgentLoop.standalone(None, policy_model[1], retriever=hashing_retriever)
    assert isinstance(loop.retriever, InlineRetriever)
    seen = []
    original = hashing_retriever._search
    hashing_retriever._search = lambda q, k: seen.append(threading.get_ident()) or original(q, k)
    try:
        hits = asyncio.run(loop.retriever.asearch(["Gritia"], 2))
    finally:
        hashing_retriever._search = original
    assert seen == [threading.get_ident()] and len(hits[0]) == 2


def test_verl_policy_is_an_async_client_only() -> None:
    from s3_agents.training.policy import VerlPolicy

    # The graph calls achat only in async runs; a sync run is refused with a message (tests/s3_agents/test_graph.py).
    assert callable(VerlPolicy.achat) and not hasattr(VerlPolicy, "chat") and not hasattr(VerlPolicy, "complete")
