"""Warm start: hop-chain trajectories with PPO's state mask, masked SFT on real SmolLM2 with a LoRA adapter."""

from __future__ import annotations

import asyncio

import pytest

from s3_agents.config import SearchConfig
from s3_agents.llm.constrained import grammar_token_masks
from s3_agents.protocol import action_grammar
from s3_agents.retrievers import FaissRetriever
from s3_agents.training.trajectories import chain_trajectories, read_trajectories, write_trajectories
from s3_agents.training.warmstart import WarmstartSettings, lora_model, masked_loss, sft_features, warmstart
from s3_agents.worlds import build_world

CONFIG = SearchConfig.from_name("3-2-2", max_new_tokens=100, max_context_docs=3)


@pytest.fixture(scope="module")
def world():
    return build_world(300, seed=5)


@pytest.fixture(scope="module")
def world_retriever(world, minilm):
    return FaissRetriever.from_passages(world.passages, minilm)


@pytest.fixture(scope="module")
def trajectories(world, world_retriever, policy_model):
    _, tokenizer = policy_model
    questions = [q for q in world.split("train") if q["hops"] == 2][:3] + \
        [q for q in world.split("train") if q["hops"] == 3][:1]
    return asyncio.run(chain_trajectories(tokenizer, world_retriever, questions, {p.id: p for p in world.passages},
                                          CONFIG, progress=False))


def test_chain_teacher_finds_the_answer_and_writes_valid_constrained_turns(trajectories, policy_model) -> None:
    _, tokenizer = policy_model
    assert len(trajectories) >= 3 and all(t.answer_in_context for t in trajectories)
    grammar = action_grammar(CONFIG)
    for t in trajectories:
        assert any('"query"' in text for text in t.outputs) and "True</search_complete>" in t.outputs[-1]
        for text in t.outputs:              # every teacher turn is a sentence of the action grammar
            ids = tokenizer.encode(text, add_special_tokens=False)
            masks = grammar_token_masks(tokenizer, grammar, ids, len(tokenizer))
            assert all(bool(masks[i, token]) for i, token in enumerate(ids)), text


def test_mask_is_one_exactly_on_the_searchers_turns(trajectories, policy_model) -> None:
    _, tokenizer = policy_model
    for t in trajectories:
        spans, current = [], []
        for token, m in zip(t.response_ids, t.response_mask):
            if m:
                current.append(token)
            elif current:
                spans.append(current)
                current = []
        if current:
            spans.append(current)
        decoded = [tokenizer.decode(span, skip_special_tokens=True) for span in spans]
        assert decoded == t.outputs
        documents = tokenizer.decode([tok for tok, m in zip(t.response_ids, t.response_mask) if not m])
        assert "<information>" in documents and "<information>" not in "".join(decoded)


def test_labels_only_on_mask_one_tokens(trajectories, tmp_path) -> None:
    t = trajectories[0]
    features = sft_features(t)
    assert features["input_ids"] == t.prompt_ids + t.response_ids
    labels = features["labels"]
    assert labels[:len(t.prompt_ids)] == [-100] * len(t.prompt_ids)
    for label, token, m in zip(labels[len(t.prompt_ids):], t.response_ids, t.response_mask):
        assert label == (token if m else -100)
    assert len(sft_features(t, max_length=100)["labels"]) == 100
    write_trajectories(trajectories, tmp_path / "t.jsonl")
    assert read_trajectories(tmp_path / "t.jsonl") == list(trajectories)
    (tmp_path / "bad.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match="bad.jsonl, line 1"):
        read_trajectories(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-on", "bf16-off"])
def test_one_epoch_lowers_the_masked_loss(trajectories, tiny_policy, tmp_path, bf16) -> None:
    """Forced both ways, whatever this CPU supports (bf16 autocast runs on any CPU, only slower); the mechanics
    on a tiny random Llama with SmolLM2's tokenizer (`s3 train warmstart` on SmolLM2 itself: test_local.py)."""
    import copy

    import torch

    base_model, tokenizer = tiny_policy
    model = lora_model(copy.deepcopy(base_model))
    # peft's "all-linear": every attention and MLP projection, not the output head.
    assert {name.split(".")[-1] for name in model.peft_config["default"].target_modules} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    summary = warmstart(model, tokenizer, trajectories[:2], tmp_path, settings=WarmstartSettings(
        epochs=1, grad_accum=1, learning_rate=1e-2, max_length=1200, bf16=bf16))
    # The model handed back computes in fp32: no autocast wrapper left on its forward.
    assert "_original_forward" not in model.__dict__ and "forward" not in model.__dict__
    seen = []
    hook = model.base_model.model.model.layers[0].self_attn.q_proj.register_forward_hook(
        lambda module, args, output: seen.append(output.dtype))
    model(input_ids=torch.tensor([[1, 2, 3]]))
    hook.remove()
    assert seen == [torch.float32] and all(p.dtype == torch.float32 for p in model.parameters())
    assert summary["loss_after"] < summary["loss_before"]
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (tmp_path / "loss.csv").is_file()
    assert sum(f.stat().st_size for f in adapter.glob("*.safetensors")) < 5_000_000    # the adapter, not the model
    assert any((tmp_path / "checkpoints").rglob("events.out.tfevents*"))
    # The base weights did not move: the adapter switched off gives the base model's loss.
    features = [sft_features(t, 1200) for t in trajectories[:2]]
    with model.disable_adapter():
        assert masked_loss(model, features) == pytest.approx(masked_loss(base_model, features), rel=1e-4)


def test_teacher_and_rejection_sampling_sources(world, world_retriever, policy_model, scripted_server) -> None:
    """(a) any chat client as teacher, kept when it found the answer; (b) best of K by reward, none if all lose."""
    from s3_agents.testing import ScriptedClient
    from s3_agents.training.agent_loop import S3AgentLoop
    from s3_agents.training.trajectories import ChainTeacher, best_of_k_trajectories, teacher_trajectories

    _, tokenizer = policy_model
    passages = {p.id: p for p in world.passages}
    two_hop = [q for q in world.split("train") if q["hops"] == 2]
    good = two_hop[0]
    bad = next(q for q in two_hop[1:] if not any(q["answers"][0] in p.text            # naive top-3 misses it
                                                 for p in world_retriever.search([q["question"]], 3)[0]))

    def teacher_for(messages):               # an "endpoint" that follows the chain of the question it is asked
        question = next(q for q in (good, bad) if q["question"] in messages[0]["content"])
        return teachers[question["id"]](messages)

    teachers = {good["id"]: ChainTeacher(good, passages, CONFIG),
                bad["id"]: lambda messages: "<search_complete>True</search_complete>"}   # gives up at once
    kept = asyncio.run(teacher_trajectories(tokenizer, world_retriever, [good, bad], ScriptedClient(teacher_for),
                                            CONFIG, progress=False))
    assert [t.question.rstrip("?") for t in kept] == [good["question"].rstrip("?")]
    assert kept[0].source == "teacher" and kept[0].answer_in_context

    row = {"raw_prompt": [{"role": "user", "content": good["question"]}],
           "reward_model": {"ground_truth": {"question": good["question"], "target": good["answers"]}}}
    search = '<search_complete>False</search_complete>\n<query>{"query": "' + good["chain"][0]["query"] + '"}</query>'
    replies = ["<search_complete>True</search_complete>", search, "<search_complete>True</search_complete>"]
    loop = S3AgentLoop.standalone(scripted_server(tokenizer, replies), tokenizer, retriever=world_retriever,
                                  search="3-2-1", response_length=1024)

    async def score(r, fields):              # the second episode searched: reward it
        return float(fields["s3_searches"])

    best = asyncio.run(best_of_k_trajectories(loop, [row], score, k=2, progress=False))
    assert len(best) == 1 and best[0].source == "self" and sum(best[0].response_mask) > 0
    assert "<query>" in tokenizer.decode([t for t, m in zip(best[0].response_ids, best[0].response_mask) if m])
    loop = S3AgentLoop.standalone(scripted_server(tokenizer, replies[:1] * 2), tokenizer, retriever=world_retriever,
                                  search="3-2-1", response_length=1024)
    assert asyncio.run(best_of_k_trajectories(loop, [row], score, k=2, progress=False)) == []


def test_observable_chain_teacher_asks_only_what_it_has_read() -> None:
    """On real records, the plain oracle names an entity no document has shown yet ("Tantallon Castle" for "In what
    part of Scotland is Bass Rock located?"); the observable teacher never does, and still asks what it has read."""
    from s3_agents.metrics import normalize_answer
    from s3_agents.realqa import pool_records
    from s3_agents.retrievers import BM25Retriever
    from s3_agents.searcher import S3Searcher
    from s3_agents.testing import ScriptedClient
    from s3_agents.training.trajectories import ChainTeacher, is_observable
    from tests.s3_agents.test_realqa import _all_records

    assert is_observable("Raoul Walsh spouse", {"raoul", "walsh", "spouse", "jump"})
    assert is_observable("Who is the mother of Raoul Walsh?", {"raoul", "walsh", "mother"})   # question words free
    assert not is_observable("Tantallon Castle", {"bass", "rock", "castle"})

    world = pool_records(_all_records(), shares=(0, 0, 1))
    retriever, passages = BM25Retriever.from_passages(world.passages), {p.id: p for p in world.passages}
    config = SearchConfig.from_name("5-3-3", max_new_tokens=100, max_context_docs=3)
    unread = {True: 0, False: 0}
    asked = {True: 0, False: 0}
    for q in world.questions:
        for observable in (False, True):
            teacher = ChainTeacher(q, passages, config, observable=observable)
            state = asyncio.run(S3Searcher(ScriptedClient(teacher), retriever, config).asearch(q["question"]))
            read = set(normalize_answer(q["question"]).split())
            for i, query in enumerate(state["queries"]):       # block i was shown before query i was written
                shown = " ".join(f"{p.title} {p.text}" for p in state["blocks"][i]["passages"])
                read |= set(normalize_answer(shown).split())
                new = set(normalize_answer(query).split()) - read - {"who", "what", "is", "of", "in", "the", "when"}
                unread[observable] += bool(new)
                asked[observable] += 1
    assert unread[False] >= 1 and unread[True] == 0, unread
    assert asked[True] >= 8, asked


def test_span_teacher_asks_a_read_name_that_retrieves_a_missing_support() -> None:
    """On real records, with a retriever, every query is one of the names the graph's span grammar would allow at that
    turn, and its results bring a kept supporting passage not shown before; the teacher stops when no name does."""
    from s3_agents.protocol import candidate_spans
    from s3_agents.realqa import pool_records
    from s3_agents.retrievers import BM25Retriever
    from s3_agents.searcher import S3Searcher
    from s3_agents.testing import ScriptedClient
    from s3_agents.training.trajectories import ChainTeacher
    from tests.s3_agents.test_realqa import _all_records

    world = pool_records(_all_records(), shares=(0, 0, 1))
    retriever, passages = BM25Retriever.from_passages(world.passages), {p.id: p for p in world.passages}
    config = SearchConfig.from_name("5-3-3", max_new_tokens=100, max_context_docs=3)
    searched = stopped_short = 0
    for q in world.questions:
        teacher = ChainTeacher(q, passages, config, span_retriever=retriever)
        state = asyncio.run(S3Searcher(ScriptedClient(teacher), retriever, config).asearch(q["question"]))
        keep = {hop["passage_id"] for hop in q["chain"][-3:]}
        for i, query in enumerate(state["queries"]):       # blocks 0..i were shown before query i was written
            shown = [p for block in state["blocks"][:i + 1] for p in block["passages"]]
            assert query in candidate_spans(q["question"], [(p.title, p.text) for p in shown]), query
            new = {p.id for p in state["blocks"][i + 1]["passages"]} - {p.id for p in shown}
            assert new & keep, (q["question"], query)
            searched += 1
        shown_ids = {p.id for block in state["blocks"] for p in block["passages"]}
        stopped_short += not keep <= shown_ids
    assert searched >= 3 and stopped_short >= 1, (searched, stopped_short)
    with pytest.raises(ValueError, match="new_results"):
        ChainTeacher(world.questions[0], passages, SearchConfig(new_results=True), span_retriever=retriever)
