"""PPO through verl's core_algos over rollouts of the s3_searcher agent loop, on SmolLM2."""

from __future__ import annotations

import asyncio
import copy
import math

import pytest
import torch

from s3_agents.training.agent_loop import S3AgentLoop
from s3_agents.training.ppo import CpuPPO, PPOSettings, Rollout, disagreeing_groups

GOOD = ['<query>{"query": "Gritia founded"}</query>', "<important_info>[1]</important_info>"
        "<search_complete>True</search_complete>"]
BAD = ["I do not know.", "<search_complete>True</search_complete>"]


def episode(tokenizer, retriever, replies, scripted_server):
    loop = S3AgentLoop.standalone(scripted_server(tokenizer, list(replies)), tokenizer, retriever=retriever,
                                  search="2-1-1", initial_k=1, prompt_length=1024, response_length=512)
    return asyncio.run(loop.run({"temperature": 1.0}, raw_prompt=[{"role": "user", "content": "Who founded Gritia?"}]))


@pytest.fixture()
def rollouts(tiny_policy, hashing_retriever, scripted_server):
    _, tokenizer = tiny_policy
    good = episode(tokenizer, hashing_retriever, GOOD, scripted_server)
    bad = episode(tokenizer, hashing_retriever, BAD, scripted_server)
    return Rollout.from_output(good, 1.0), Rollout.from_output(bad, 0.0)


def sequence_logprob(ppo: CpuPPO, rollout: Rollout) -> float:
    with torch.no_grad():
        log_probs = ppo._forward(ppo.model, rollout)[0][0]
    mask = torch.tensor(rollout.response_mask, dtype=torch.float32)
    return float((log_probs * mask).sum())


@pytest.mark.slow
def test_one_update_changes_weights_with_finite_losses(tiny_policy, rollouts):
    model = copy.deepcopy(tiny_policy[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ppo = CpuPPO(model)
    metrics = ppo.step(list(rollouts))
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["critic/vf_loss"] > 0 and metrics["critic/score/mean"] == 0.5
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the policy's weights did not move"
    # The reference stays frozen: it is the KL anchor.
    assert all(torch.equal(v, before[k]) for k, v in ppo.ref.state_dict().items())


@pytest.mark.slow
def test_lora_updates_favour_the_rewarded_episode_against_the_base_model(tiny_policy, rollouts):
    """LoRA: only the adapter moves; the KL reference is the same model with the adapter off (no copy)."""
    from s3_agents.training.warmstart import lora_model

    good, bad = rollouts
    model = lora_model(copy.deepcopy(tiny_policy[0]))
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    ppo = CpuPPO(model, PPOSettings(actor_lr=1e-3, critic_lr=1e-3, entropy_coeff=0.0))
    assert ppo.ref is None and ppo.lora
    start = sequence_logprob(ppo, good) - sequence_logprob(ppo, bad)
    for _ in range(2):
        metrics = ppo.step([good, bad])
    assert sequence_logprob(ppo, good) - sequence_logprob(ppo, bad) > start
    assert metrics["actor/reward_kl_penalty"] != 0.0       # the policy has left its reference
    assert all(torch.equal(v, frozen[k]) for k, v in model.state_dict().items() if "lora_" not in k)
    with ppo._reference() as reference:                     # adapter off: the base model's log-probs
        ref_lp = ppo._forward(reference, good)[0]
    base = CpuPPO(copy.deepcopy(tiny_policy[0]))
    assert torch.allclose(ref_lp, base._forward(base.model, good)[0], atol=1e-4)


@pytest.mark.slow
def test_grammar_sampled_turns_are_scored_under_the_grammar(tiny_policy, hashing_retriever, scripted_server):
    """Tokens the grammar forced have probability 1 (log-prob 0) under the distribution they were drawn from."""
    from s3_agents.config import SearchConfig
    from s3_agents.protocol import action_grammar

    model, tokenizer = tiny_policy
    reply = '<important_info>[1]</important_info>\n<search_complete>True</search_complete>'
    out = episode(tokenizer, hashing_retriever, [reply], scripted_server)
    grammar = action_grammar(SearchConfig.from_name("2-1-1", initial_k=1))
    free, constrained = Rollout.from_output(out, 1.0), Rollout.from_output(out, 1.0, grammar)
    ppo = CpuPPO.__new__(CpuPPO)
    ppo.settings, ppo.tokenizer, ppo.device = PPOSettings(), tokenizer, torch.device("cpu")
    with torch.no_grad():
        lp_free = ppo._forward(model, free)[0][0]
        lp_constrained = ppo._forward(model, constrained)[0][0]
    generated = torch.tensor(out.response_mask, dtype=torch.bool)
    assert torch.all(lp_constrained[generated] >= lp_free[generated] - 1e-5)
    # Most of the turn is tag text the grammar forces: log-prob 0 there, which the free model never reaches.
    forced = int((lp_constrained[generated] > -1e-6).sum())
    assert forced >= int(generated.sum()) // 2 > int((lp_free[generated] > -1e-6).sum())
    assert torch.equal(lp_constrained[~generated], lp_free[~generated])


def test_rollouts_without_generated_tokens_are_refused(tiny_policy):
    ppo = CpuPPO.__new__(CpuPPO)
    ppo.settings = PPOSettings()
    with pytest.raises(ValueError, match="no rollout"):
        ppo.step([Rollout([1, 2], [3, 4], [0, 0], 1.0)])


@pytest.mark.slow
def test_one_batched_pass_gives_each_rollouts_own_log_probs_and_the_references(tiny_policy, rollouts):
    """Right-padded micro-batches and peft's mixed-adapter rows give what one forward per rollout gives."""
    from s3_agents.training.warmstart import lora_model

    good, bad = rollouts
    model = lora_model(copy.deepcopy(tiny_policy[0]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)                    # an adapter that moves the policy away from its reference
    ppo = CpuPPO(model, PPOSettings(micro_batch_tokens=100_000))
    assert ppo._micro_batches([good, bad], 2) == [sorted([0, 1], key=lambda i: len((good, bad)[i].response_ids)
                                                         + len((good, bad)[i].prompt_ids))]
    old, ref, values = ppo._score([good, bad], [[0, 1]], need_ref=True)
    for i, r in enumerate((good, bad)):
        with torch.no_grad():
            alone = ppo._forward(model, r)[0][0]
            with ppo._reference() as reference:
                ref_alone = ppo._forward(reference, r)[0][0]
        assert torch.allclose(old[i], alone, atol=1e-4) and torch.allclose(ref[i], ref_alone, atol=1e-4)
        assert not torch.allclose(old[i], ref[i], atol=1e-3) and values[i].shape == alone.shape


@pytest.mark.slow
def test_a_warm_start_adapter_frozen_beside_the_trained_one_is_the_kl_reference(tiny_policy, rollouts, tmp_path):
    """``ref_adapter``: the reference is the adapter RL started from, so the KL starts at zero and the reference
    stays where the warm start left it while the trained copy moves."""
    from peft import PeftModel

    from s3_agents.training.warmstart import lora_model

    good, bad = rollouts
    warm = lora_model(copy.deepcopy(tiny_policy[0]))
    with torch.no_grad():
        for name, p in warm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)                    # a warm start: away from the base model
    warm.save_pretrained(str(tmp_path / "warm"))
    model = PeftModel.from_pretrained(copy.deepcopy(tiny_policy[0]), str(tmp_path / "warm"), is_trainable=True)
    with pytest.raises(ValueError, match="load it first"):
        CpuPPO(model, ref_adapter="kl_reference")
    model.load_adapter(str(tmp_path / "warm"), adapter_name="kl_reference", is_trainable=False)
    ppo = CpuPPO(model, PPOSettings(actor_lr=1e-3, critic_lr=1e-3, entropy_coeff=0.0), ref_adapter="kl_reference")
    old, ref, _ = ppo._score([good, bad], [[0, 1]], need_ref=True)
    assert all(torch.allclose(o, r, atol=1e-5) for o, r in zip(old, ref))          # KL 0 at the start
    with torch.no_grad():
        with ppo._reference() as reference:
            warm_lp = ppo._forward(reference, good)[0][0]
        with model.disable_adapter():
            base_lp = ppo._forward(model, good)[0][0]
    assert not torch.allclose(warm_lp, base_lp, atol=1e-3)                          # not the untrained base
    assert model.active_adapter == "default" and all(
        p.requires_grad == ("kl_reference" not in n) for n, p in model.named_parameters() if "lora_" in n)
    ppo.step([good, bad])
    ppo.step([good, bad])
    old, ref, _ = ppo._score([good], [[0]], need_ref=True)
    assert not torch.allclose(old[0], ref[0], atol=1e-4)                              # the trained copy moved
    assert torch.allclose(ref[0], warm_lp, atol=1e-4)                                 # the reference did not


@pytest.mark.slow
@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-on", "bf16-off"])
def test_a_step_under_forced_bf16_or_fp32_leaves_an_fp32_model(tiny_policy, rollouts, bf16):
    from s3_agents.training.warmstart import lora_model

    model = lora_model(copy.deepcopy(tiny_policy[0]))
    ppo = CpuPPO(model, PPOSettings(bf16=bf16, actor_lr=1e-3))
    assert ppo.bf16 is bf16
    metrics = ppo.step(list(rollouts))
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert "forward" not in model.__dict__ and all(p.dtype == torch.float32 for p in model.parameters())
    assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.dtype == torch.float32
    assert torch.is_autocast_enabled("cpu") is False


@pytest.mark.slow
def test_grpo_compares_the_samples_of_one_question(tiny_policy, rollouts):
    from s3_agents.training.warmstart import lora_model

    good, bad = rollouts
    model = lora_model(copy.deepcopy(tiny_policy[0]))
    ppo = CpuPPO(model, PPOSettings(algorithm="grpo", actor_lr=1e-3, entropy_coeff=0.0))
    with pytest.raises(ValueError, match="group"):
        ppo.step([good, bad])
    group = [Rollout(r.prompt_ids, r.response_ids, r.response_mask, r.reward, group="q1") for r in (good, bad)]
    start = sequence_logprob(ppo, good) - sequence_logprob(ppo, bad)
    for _ in range(2):
        metrics = ppo.step(group)
    assert sequence_logprob(ppo, good) - sequence_logprob(ppo, bad) > start
    assert metrics["critic/vf_loss"] == 0.0 and metrics["actor/kl_loss"] >= 0.0
    with pytest.raises(ValueError, match="algorithm"):
        CpuPPO(model, PPOSettings(algorithm="dpo"))


def test_only_groups_whose_rewards_differ_are_kept() -> None:
    rows = [Rollout([1], [2], [1], reward, group=group)
            for reward, group in ((1.0, "a"), (1.0, "b"), (0.0, "a"), (1.0, "b"), (0.2, "c"), (0.2, "c"))]
    assert [(r.group, r.reward) for r in disagreeing_groups(rows)] == [("a", 1.0), ("a", 0.0)]
    assert disagreeing_groups(rows[1::2][:2]) == [] and disagreeing_groups([]) == []
