"""PPO updates on a CPU with verl's own math, for small runs (SmolLM2-135M) in notebooks and tests.

On GPUs ``s3 train run`` hands everything to verl's PPO trainer. Here the same pieces of
``verl.trainer.ppo.core_algos`` run in one process over rollouts from the ``s3_searcher`` agent
loop: in-reward KL against a frozen reference (``kl_penalty``), GAE over the generated tokens
(``compute_gae_advantage_return``, which skips observation tokens and whitens), the clipped policy
loss (``get_policy_loss_fn("vanilla")``) and the clipped value loss (``compute_value_loss``).
Nothing of PPO is re-implemented; this module only batches, runs the forward passes and steps
the optimisers.

The critic differs from the GPU setup (a full second model): here it is a linear value head over
the policy's last hidden states, detached, so critic updates never move the policy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig

__all__ = ["Rollout", "PPOSettings", "CpuPPO"]


@dataclass
class Rollout:
    """One episode for PPO: the agent loop's ids and state mask, and its reward."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    reward: float

    @classmethod
    def from_output(cls, output: Any, reward: float) -> Rollout:
        """From a verl ``AgentLoopOutput`` and the episode's reward."""
        return cls(list(output.prompt_ids), list(output.response_ids), list(output.response_mask), float(reward))


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyper-parameters; defaults are the paper's (s3 ``train_s3.sh``) where they apply.

    Attributes:
        actor_lr: Policy learning rate (s3: 1e-6).
        critic_lr: Value-head learning rate (s3 critic: 1e-5).
        kl_coef: In-reward KL coefficient against the reference policy (s3: 0.001).
        kl_penalty: KL estimator name in ``core_algos.kl_penalty`` (s3: ``"kl"``).
        clip_ratio: PPO clip (s3: 0.2).
        cliprange_value: Value clip (s3: 0.5).
        gamma: GAE discount (s3: 1.0).
        lam: GAE lambda (s3: 1.0).
        entropy_coeff: Entropy bonus (s3: 0.001).
        max_grad_norm: Gradient clipping (s3: 1.0).
        ppo_epochs: Passes over each batch (s3: 1).
    """

    actor_lr: float = 1e-6
    critic_lr: float = 1e-5
    kl_coef: float = 0.001
    kl_penalty: str = "kl"
    clip_ratio: float = 0.2
    cliprange_value: float = 0.5
    gamma: float = 1.0
    lam: float = 1.0
    entropy_coeff: float = 0.001
    max_grad_norm: float = 1.0
    ppo_epochs: int = 1


class CpuPPO:
    """PPO on one process: a policy, a frozen reference copy, a value head, verl's losses.

    Args:
        model: The policy (a transformers causal LM, trained in place).
        settings: Hyper-parameters.
        ref_model: The KL reference (default: a frozen copy of ``model`` as it is now).

    Example:
        >>> ppo = CpuPPO(model)                                             # doctest: +SKIP
        >>> metrics = ppo.step([Rollout.from_output(out, reward) for out, reward in episodes])  # doctest: +SKIP
        >>> metrics["actor/pg_loss"], metrics["critic/vf_loss"]             # doctest: +SKIP
    """

    def __init__(self, model: Any, settings: PPOSettings | None = None, *, ref_model: Any = None) -> None:
        self.settings = settings or PPOSettings()
        self.model = model
        self.ref = ref_model if ref_model is not None else copy.deepcopy(model)
        self.ref.eval().requires_grad_(False)
        self.value_head = torch.nn.Linear(model.config.hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        self.actor_optim = torch.optim.AdamW(model.parameters(), lr=self.settings.actor_lr, weight_decay=0.0)
        self.critic_optim = torch.optim.AdamW(self.value_head.parameters(), lr=self.settings.critic_lr)
        self.actor_config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                                        ppo_mini_batch_size=1, clip_ratio=self.settings.clip_ratio)
        self.policy_loss = core_algos.get_policy_loss_fn("vanilla")
        self.steps = 0

    # -- forward passes --------------------------------------------------------------------------
    def _forward(self, model: Any, rollout: Rollout, *, with_hidden: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Log-probs of the response tokens (1, R), and the hidden states and logits that predict them."""
        ids = torch.tensor([rollout.prompt_ids + rollout.response_ids])
        p, r = len(rollout.prompt_ids), len(rollout.response_ids)
        out = model(input_ids=ids, output_hidden_states=with_hidden)
        logits = out.logits[:, p - 1:p + r - 1].float()
        log_probs = torch.log_softmax(logits, -1).gather(-1, ids[:, p:].unsqueeze(-1)).squeeze(-1)
        hidden = out.hidden_states[-1][:, p - 1:p + r - 1] if with_hidden else None
        return log_probs, hidden, logits

    def _values(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_head(hidden.detach().float()).squeeze(-1)

    # -- one PPO step ----------------------------------------------------------------------------
    def step(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        """One PPO iteration over ``rollouts``: advantages from verl's GAE, then policy and value updates.

        Returns:
            Metrics named as verl logs them (``actor/pg_loss``, ``critic/vf_loss``, ``actor/ppo_kl``,
            ``actor/pg_clipfrac``, ``actor/grad_norm``, ``critic/score/mean``, ``actor/reward_kl_penalty``...).
        """
        rollouts = [r for r in rollouts if any(r.response_mask)]
        if not rollouts:
            raise ValueError("no rollout has a generated token to train on")
        s = self.settings
        width = max(len(r.response_ids) for r in rollouts)

        def pad(rows: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack([torch.nn.functional.pad(x, (0, width - x.shape[-1])) for x in rows])

        old, ref, values, masks, scores = [], [], [], [], []
        with torch.no_grad():
            for r in rollouts:
                log_probs, hidden, _ = self._forward(self.model, r, with_hidden=True)
                old.append(log_probs[0])
                ref.append(self._forward(self.ref, r)[0][0])
                values.append(self._values(hidden)[0])
                mask = torch.tensor(r.response_mask, dtype=torch.float32)
                masks.append(mask)
                score = torch.zeros(len(r.response_ids))
                score[int(mask.nonzero().max())] = r.reward       # on the last generated token
                scores.append(score)
        old_t, ref_t, values_t, mask_t, scores_t = (pad(x) for x in (old, ref, values, masks, scores))
        kl = core_algos.kl_penalty(old_t, ref_t, s.kl_penalty) * mask_t
        rewards = scores_t - s.kl_coef * kl
        advantages, returns = core_algos.compute_gae_advantage_return(rewards, values_t, mask_t, s.gamma, s.lam)

        total_tokens = float(mask_t.sum())
        metrics: dict[str, float] = {"actor/pg_loss": 0.0, "critic/vf_loss": 0.0, "actor/ppo_kl": 0.0,
                                     "actor/pg_clipfrac": 0.0, "actor/entropy": 0.0, "critic/vf_clipfrac": 0.0}
        self.model.train()
        for _ in range(s.ppo_epochs):
            self.actor_optim.zero_grad()
            self.critic_optim.zero_grad()
            for i, r in enumerate(rollouts):
                n = len(r.response_ids)
                weight = float(mask_t[i].sum()) / total_tokens      # token-mean over the whole batch
                m = mask_t[i:i + 1, :n]
                log_probs, hidden, logits = self._forward(self.model, r, with_hidden=True)
                pg_loss, pg_metrics = self.policy_loss(old_t[i:i + 1, :n], log_probs, advantages[i:i + 1, :n], m,
                                                       "token-mean", self.actor_config)
                entropy = core_algos.agg_loss(_entropy(logits), m, "token-mean")
                vf_loss, vf_clipfrac = core_algos.compute_value_loss(self._values(hidden), returns[i:i + 1, :n],
                                                                     values_t[i:i + 1, :n], m, s.cliprange_value)
                ((pg_loss - s.entropy_coeff * entropy) * weight).backward()
                (vf_loss * weight).backward()
                metrics["actor/pg_loss"] += float(pg_loss.detach()) * weight / s.ppo_epochs
                metrics["critic/vf_loss"] += float(vf_loss.detach()) * weight / s.ppo_epochs
                metrics["actor/entropy"] += float(entropy.detach()) * weight / s.ppo_epochs
                metrics["actor/ppo_kl"] += pg_metrics["actor/ppo_kl"] * weight / s.ppo_epochs
                metrics["actor/pg_clipfrac"] += pg_metrics["actor/pg_clipfrac"] * weight / s.ppo_epochs
                metrics["critic/vf_clipfrac"] += float(vf_clipfrac) * weight / s.ppo_epochs
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(self.value_head.parameters(), s.max_grad_norm)
            if math.isfinite(float(grad_norm)):
                self.actor_optim.step()
                self.critic_optim.step()
        self.model.eval()
        self.steps += 1
        metrics.update({
            "actor/grad_norm": float(grad_norm),
            "actor/reward_kl_penalty": float((kl * mask_t).sum() / total_tokens),
            "critic/score/mean": float(sum(r.reward for r in rollouts) / len(rollouts)),
            "critic/values/mean": float((values_t * mask_t).sum() / total_tokens),
            "critic/advantages/mean": float((advantages * mask_t).sum() / total_tokens),
            "response_length/mean": float(sum(len(r.response_ids) for r in rollouts) / len(rollouts)),
            "generated_tokens/mean": total_tokens / len(rollouts),
        })
        return metrics


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    from verl.utils.torch_functional import entropy_from_logits

    return entropy_from_logits(logits)
