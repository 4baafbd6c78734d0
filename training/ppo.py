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

With a LoRA policy (a peft ``PeftModel``) only the adapter trains and the KL reference is the same
model with its adapter switched off, or with a second, frozen adapter switched in (the warm start a run began
from), so no second copy of the model is held. Turns sampled under the action grammar
(``Rollout.grammar``) are scored under the grammar-masked distribution they were drawn from, for the
old, new and reference policies alike (docs/training.md says why).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig

from s3_agents.errors import DataError

__all__ = ["Rollout", "PPOSettings", "CpuPPO", "disagreeing_groups"]


@dataclass
class Rollout:
    """One episode for PPO: the agent loop's ids and state mask, and its reward."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    reward: float
    grammar: str | None = None
    """The GBNF grammar the generated turns were sampled under, if any."""
    group: int | str | None = None
    """The question this sample answers (GRPO compares the samples of one group)."""
    _allowed: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_output(cls, output: Any, reward: float, grammar: str | None = None,
                    group: int | str | None = None) -> Rollout:
        """From a verl ``AgentLoopOutput`` and the episode's reward."""
        return cls(list(output.prompt_ids), list(output.response_ids), list(output.response_mask), float(reward),
                   grammar, group)

    def allowed_tokens(self, tokenizer: Any, vocab_size: int) -> tuple[Any, Any] | None:
        """Response positions of generated tokens and the tokens the grammar allowed there (cached)."""
        if self.grammar is None:
            return None
        if self._allowed is None:
            from s3_agents.llm.constrained import grammar_token_masks

            positions, masks = [], []
            for start, end in _spans(self.response_mask):
                masks.append(grammar_token_masks(tokenizer, self.grammar, self.response_ids[start:end], vocab_size))
                positions.extend(range(start, end))
            self._allowed = (torch.tensor(positions), torch.cat(masks))
        return self._allowed


def _spans(mask: Sequence[int]) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of each run of 1s in ``mask``: the turns the model generated."""
    start = None
    for i, m in enumerate(list(mask) + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            yield start, i
            start = None


def disagreeing_groups(rollouts: Sequence[Rollout]) -> list[Rollout]:
    """The rollouts of the GRPO groups whose rewards are not all the same, in their order.

    A group whose samples all scored the same has a GRPO advantage of 0 for every token: in an update it adds only
    its KL term. Leaving such groups out is DAPO's dynamic-sampling filter without its resampling.

    Example:
        >>> rows = [Rollout([1], [2], [1], r, group=g) for r, g in ((1.0, "a"), (0.0, "a"), (0.5, "b"), (0.5, "b"))]
        >>> [r.group for r in disagreeing_groups(rows)]
        ['a', 'a']
    """
    rewards: dict[Any, set[float]] = {}
    for r in rollouts:
        rewards.setdefault(r.group, set()).add(r.reward)
    return [r for r in rollouts if len(rewards[r.group]) > 1]


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
        temperature: Sampling temperature of the rollouts; log-probs are taken at it, as verl's actor does.
        algorithm: ``"gae"`` (PPO with the value head and in-reward KL, the paper's) or ``"grpo"``
            (group-relative advantages over the samples of one question, ``Rollout.group``; no value head; KL
            as a loss, as verl's GRPO recipes do).
        kl_loss_coef: GRPO's KL-loss coefficient against the reference.
        kl_loss_type: GRPO's KL estimator (``core_algos.kl_penalty`` name).
        bf16: bfloat16 autocast for the forward and backward passes (weights, optimiser state and losses stay
            fp32); ``None``: where the CPU has AVX-512 BF16 / AMX or the GPU has bf16.
        micro_batch_tokens: Token budget of one micro-batch (padded rows x columns); rollouts are sorted by
            length and grouped up to it. The default keeps episodes of a thousand tokens or more one to a
            micro-batch: on 2 CPU cores a padded pair ran slower than the two alone (54.6 s against 42.3 s for 8
            rollouts of 1,400 tokens, bf16); a GPU gains from a larger budget.
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
    temperature: float = 1.0
    algorithm: str = "gae"
    kl_loss_coef: float = 0.001
    kl_loss_type: str = "low_var_kl"
    bf16: bool | None = False
    micro_batch_tokens: int = 2048


class CpuPPO:
    """PPO on one process (CPU or one GPU): a policy, its KL reference, a value head, verl's losses.

    A step makes two kinds of pass over length-sorted micro-batches: one no-grad forward that yields the old
    policy's log-probs, the reference's log-probs and the values together (for a LoRA policy the batch holds
    each rollout twice, adapter on and off, through peft's mixed-adapter batches), then one forward and
    backward per micro-batch for the update. With one PPO epoch the update is on-policy and the old
    log-probs of the first pass are the ratio's denominator, as in verl.

    Args:
        model: The policy (a transformers causal LM or a peft LoRA model, trained in place, on any device).
        settings: Hyper-parameters.
        ref_model: The KL reference (default: the LoRA model with its adapter off, or a frozen copy of a
            full model as it is now).
        ref_adapter: For a LoRA policy, the name of a frozen adapter loaded beside the trained one
            (``model.load_adapter(path, adapter_name=...)``) that is the KL reference: the warm start, so the KL
            measures how far RL moved from it rather than from the untrained base.
        tokenizer: The policy's tokenizer (needed for rollouts sampled under a grammar).

    Example:
        >>> ppo = CpuPPO(model)                                             # doctest: +SKIP
        >>> metrics = ppo.step([Rollout.from_output(out, reward) for out, reward in episodes])  # doctest: +SKIP
        >>> metrics["actor/pg_loss"], metrics["critic/vf_loss"]             # doctest: +SKIP
    """

    def __init__(self, model: Any, settings: PPOSettings | None = None, *, ref_model: Any = None,
                 ref_adapter: str | None = None, tokenizer: Any = None) -> None:
        self.settings = settings or PPOSettings()
        if self.settings.algorithm not in ("gae", "grpo"):
            raise ValueError(f"algorithm must be 'gae' or 'grpo', got {self.settings.algorithm!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.lora = ref_model is None and hasattr(model, "disable_adapter")
        if ref_adapter is not None and (not self.lora or ref_adapter not in getattr(model, "peft_config", {})):
            raise ValueError(f"ref_adapter {ref_adapter!r} is not an adapter of this LoRA model: load it first with "
                             "model.load_adapter(path, adapter_name=..., is_trainable=False)")
        self.ref_adapter = ref_adapter
        self.ref = ref_model if ref_model is not None else None if self.lora else copy.deepcopy(model)
        if self.ref is not None:
            self.ref.eval().requires_grad_(False)
        self.device = next(model.parameters()).device
        self.value_head = torch.nn.Linear(model.config.hidden_size, 1).to(self.device)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.actor_optim = torch.optim.AdamW(trainable, lr=self.settings.actor_lr, weight_decay=0.0)
        self.critic_optim = torch.optim.AdamW(self.value_head.parameters(), lr=self.settings.critic_lr)
        self.actor_config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                                        ppo_mini_batch_size=1, clip_ratio=self.settings.clip_ratio)
        self.policy_loss = core_algos.get_policy_loss_fn("vanilla")
        self.steps = 0

    @property
    def bf16(self) -> bool:
        """Whether passes run under bfloat16 autocast (``settings.bf16``, or what the device supports)."""
        if self.settings.bf16 is None:
            from s3_agents.training.warmstart import bf16_available

            return bf16_available(self.device.type)
        return bool(self.settings.bf16)

    def _autocast(self) -> Any:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # -- forward passes --------------------------------------------------------------------------
    def _forward_batch(self, model: Any, rollouts: Sequence[Rollout], *, with_hidden: bool = False,
                       with_entropy: bool = False, adapter_names: list[str] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Log-probs of each rollout's response tokens (B, R), and the hidden states (B, R, H) and entropies
        (B, R) of the positions that predict them, in one right-padded forward (R: the longest response).

        Only generated tokens (response mask 1) are scored: the LM head, the softmax and the entropy run on
        those positions alone, and every other entry is 0 (PPO, GAE and the value loss mask them out).
        Logits are divided by the sampling temperature, and positions sampled under a grammar keep only the
        tokens it allowed (the distribution the token was drawn from).
        """
        if any(r.grammar is not None for r in rollouts) and self.tokenizer is None:
            raise ValueError("rollouts sampled under a grammar need CpuPPO(..., tokenizer=...)")
        n = len(rollouts)
        lengths = [len(r.prompt_ids) + len(r.response_ids) for r in rollouts]
        resp = max(len(r.response_ids) for r in rollouts)
        generated = [[j for j, m in enumerate(r.response_mask) if m] for r in rollouts]
        width = max(1, max(len(g) for g in generated))
        ids = torch.zeros((n, max(lengths)), dtype=torch.long)
        attention = torch.zeros_like(ids)
        columns = torch.zeros((n, width), dtype=torch.long)     # response position of each scored token
        targets = torch.zeros((n, width), dtype=torch.long)
        valid = torch.zeros((n, width), dtype=torch.bool)
        for b, r in enumerate(rollouts):
            ids[b, :lengths[b]] = torch.tensor(r.prompt_ids + r.response_ids)
            attention[b, :lengths[b]] = 1
            k = len(generated[b])
            if k:
                columns[b, :k] = torch.tensor(generated[b])
                targets[b, :k] = torch.tensor([r.response_ids[j] for j in generated[b]])
                valid[b, :k] = True
        starts = torch.tensor([len(r.prompt_ids) - 1 for r in rollouts]).unsqueeze(1)
        rows = torch.arange(n).unsqueeze(1).to(self.device)
        positions = (columns + starts).to(self.device)          # the position that predicts each scored token
        kwargs: dict[str, Any] = {"adapter_names": adapter_names} if adapter_names else {}
        out = model(input_ids=ids.to(self.device), attention_mask=attention.to(self.device), output_hidden_states=True,
                    logits_to_keep=1, **kwargs)
        states = out.hidden_states[-1][rows, positions]           # (B, G, H), after the final norm
        logits = model.get_output_embeddings()(states).float() / self.settings.temperature
        for b, r in enumerate(rollouts):
            allowed = r.allowed_tokens(self.tokenizer, logits.shape[-1])
            if allowed is not None:                  # its positions are the generated ones, in order
                _, masks = allowed
                k = masks.shape[0]
                logits[b, :k] = logits[b, :k].masked_fill(~masks.to(self.device), -1e9)
        scored = torch.log_softmax(logits, -1).gather(-1, targets.to(self.device).unsqueeze(-1)).squeeze(-1)
        valid, columns = valid.to(self.device), columns.to(self.device)

        def spread(values: torch.Tensor) -> torch.Tensor:
            """(B, G, ...) at the scored tokens -> (B, R, ...) over the whole response, 0 elsewhere."""
            full = values.new_zeros((n, resp, *values.shape[2:]))
            full[rows.expand_as(columns)[valid], columns[valid]] = values[valid]
            return full

        hidden = spread(states) if with_hidden else None
        entropy = spread(_entropy(logits)) if with_entropy else None
        return spread(scored), hidden, entropy

    def _forward(self, model: Any, rollout: Rollout, *, with_hidden: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`_forward_batch` of one rollout: log-probs (1, R), hidden states and entropies."""
        return self._forward_batch(model, [rollout], with_hidden=with_hidden)

    @contextlib.contextmanager
    def _frozen_in_bf16(self) -> Iterator[None]:
        """Under bf16, the frozen weights are held in bf16 for the step (autocast casts a frozen weight again at
        every call; it caches only trainable ones), then given back their fp32 values exactly."""
        if not self.bf16:
            yield
            return
        kept = [(p, p.data) for p in self.model.parameters() if not p.requires_grad and p.dtype == torch.float32]
        for p, data in kept:
            p.data = data.to(torch.bfloat16)
        try:
            yield
        finally:
            for p, data in kept:
                p.data = data

    def _micro_batches(self, rollouts: Sequence[Rollout], copies: int = 1) -> list[list[int]]:
        """Indices of ``rollouts`` sorted by length, cut into micro-batches of at most ``micro_batch_tokens``
        padded tokens (``copies``: how many times each rollout appears in a batch)."""
        order = sorted(range(len(rollouts)), key=lambda i: len(rollouts[i].prompt_ids) + len(rollouts[i].response_ids))
        batches: list[list[int]] = []
        for i in order:
            size = len(rollouts[i].prompt_ids) + len(rollouts[i].response_ids)
            if batches and (len(batches[-1]) + 1) * copies * size <= self.settings.micro_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    @contextlib.contextmanager
    def _reference(self) -> Iterator[Any]:
        """The KL reference: the base model (adapter off) or the reference adapter for LoRA, else the frozen copy."""
        if self.ref is not None:
            yield self.ref
        elif self.ref_adapter is not None:
            active = self.model.active_adapter
            self.model.set_adapter(self.ref_adapter)
            try:
                yield self.model
            finally:
                self.model.set_adapter(active)          # peft: the active adapter trainable again, the other frozen
        else:
            with self.model.disable_adapter():
                yield self.model

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs besides the policy's weights: value head, optimisers, step count."""
        return {"value_head": self.value_head.state_dict(), "actor_optim": self.actor_optim.state_dict(),
                "critic_optim": self.critic_optim.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (after the policy's weights are restored)."""
        self.value_head.load_state_dict(state["value_head"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.steps = int(state["steps"])

    def _values(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_head(hidden.detach().float()).squeeze(-1)

    def _score(self, rollouts: list[Rollout], batches: list[list[int]], need_ref: bool
               ) -> tuple[list[torch.Tensor], list[torch.Tensor | None], list[torch.Tensor | None]]:
        """The no-grad pass: old log-probs, reference log-probs and values of every rollout (response length)."""
        gae = self.settings.algorithm == "gae"
        n = len(rollouts)
        old: list[Any] = [None] * n
        ref: list[Any] = [None] * n
        values: list[Any] = [None] * n
        self.model.eval()
        with torch.no_grad(), self._autocast():
            for batch in batches:
                part = [rollouts[i] for i in batch]
                k = len(part)
                if need_ref and self.lora:          # one forward: adapter on for the first k rows, off for the rest
                    names = [self.model.active_adapter] * k + [self.ref_adapter or "__base__"] * k
                    log_probs, hidden, _ = self._forward_batch(self.model, part + part, with_hidden=gae,
                                                               adapter_names=names)
                    ref_lp = log_probs[k:]
                else:
                    log_probs, hidden, _ = self._forward_batch(self.model, part, with_hidden=gae)
                    ref_lp = None
                    if need_ref:
                        with self._reference() as reference:
                            ref_lp = self._forward_batch(reference, part)[0]
                for j, i in enumerate(batch):
                    size = len(rollouts[i].response_ids)
                    old[i] = log_probs[j, :size].float()
                    if ref_lp is not None:
                        ref[i] = ref_lp[j, :size].float()
                    if gae:
                        values[i] = self._values(hidden[j, :size])
        return old, ref, values

    # -- one PPO step ----------------------------------------------------------------------------
    def step(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        """One PPO iteration over ``rollouts``: advantages from verl's GAE (or GRPO), then policy and value updates.

        Returns:
            Metrics named as verl logs them (``actor/pg_loss``, ``critic/vf_loss``, ``actor/ppo_kl``,
            ``actor/pg_clipfrac``, ``actor/grad_norm``, ``critic/score/mean``, ``actor/reward_kl_penalty``...).
        """
        rollouts = [r for r in rollouts if any(r.response_mask)]
        if not rollouts:
            raise DataError("no rollout has a generated token to train on")
        s = self.settings
        gae = s.algorithm == "gae"
        if not gae and any(r.group is None for r in rollouts):
            raise ValueError("GRPO compares the samples of one question: give every Rollout its group")
        with self._frozen_in_bf16():
            metrics = self._step(rollouts, gae)
        self.steps += 1
        return metrics

    def _step(self, rollouts: list[Rollout], gae: bool) -> dict[str, float]:
        s = self.settings
        width = max(len(r.response_ids) for r in rollouts)

        def pad(rows: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack([torch.nn.functional.pad(x, (0, width - x.shape[-1])) for x in rows])

        need_ref = (s.kl_coef if gae else s.kl_loss_coef) > 0
        old, ref, values = self._score(rollouts, self._micro_batches(rollouts, 2 if need_ref and self.lora else 1),
                                       need_ref)
        masks, scores = [], []
        for r in rollouts:
            mask = torch.tensor(r.response_mask, dtype=torch.float32, device=self.device)
            masks.append(mask)
            score = torch.zeros(len(r.response_ids), device=self.device)
            score[int(mask.nonzero().max())] = r.reward       # on the last generated token
            scores.append(score)
        old_t, mask_t, scores_t = pad(old), pad(masks), pad(scores)
        ref_t = pad(ref) if need_ref else old_t
        kl = core_algos.kl_penalty(old_t, ref_t, s.kl_penalty) * mask_t
        if gae:
            values_t = pad(values)
            rewards = scores_t - s.kl_coef * kl
            advantages, returns = core_algos.compute_gae_advantage_return(rewards, values_t, mask_t, s.gamma, s.lam)
        else:
            import numpy as np

            groups = np.array([str(r.group) for r in rollouts], dtype=object)
            advantages, returns = core_algos.compute_grpo_outcome_advantage(scores_t, mask_t, groups)

        total_tokens = float(mask_t.sum())
        metrics: dict[str, float] = {"actor/pg_loss": 0.0, "critic/vf_loss": 0.0, "actor/ppo_kl": 0.0,
                                     "actor/pg_clipfrac": 0.0, "actor/entropy": 0.0, "critic/vf_clipfrac": 0.0,
                                     "actor/kl_loss": 0.0}
        batches = self._micro_batches(rollouts)
        # Dropout stays off (eval mode) in the update as in the scoring pass: on-policy, the ratio then compares
        # the very function that scored the old log-probs (verl and TRL switch the policy's dropout off too).
        self.model.eval()
        for _ in range(s.ppo_epochs):
            self.actor_optim.zero_grad()
            self.critic_optim.zero_grad()
            for batch in batches:
                part = [rollouts[i] for i in batch]
                n = max(len(r.response_ids) for r in part)
                rows = torch.tensor(batch, device=self.device)
                m = mask_t[rows, :n]
                weight = float(m.sum()) / total_tokens                 # token-mean over the whole batch
                with self._autocast():
                    log_probs, hidden, entropies = self._forward_batch(self.model, part, with_hidden=gae,
                                                                       with_entropy=True)
                log_probs = log_probs.float()
                pg_loss, pg_metrics = self.policy_loss(old_t[rows, :n], log_probs, advantages[rows, :n], m,
                                                       "token-mean", self.actor_config)
                entropy = core_algos.agg_loss(entropies.float(), m, "token-mean")
                loss = pg_loss - s.entropy_coeff * entropy
                if not gae and need_ref:
                    kl_loss = core_algos.agg_loss(core_algos.kl_penalty(log_probs, ref_t[rows, :n], s.kl_loss_type),
                                                  m, "token-mean")
                    loss = loss + s.kl_loss_coef * kl_loss
                    metrics["actor/kl_loss"] += float(kl_loss.detach()) * weight / s.ppo_epochs
                (loss * weight).backward()
                if gae:
                    vf_loss, vf_clipfrac = core_algos.compute_value_loss(self._values(hidden), returns[rows, :n],
                                                                         values_t[rows, :n], m, s.cliprange_value)
                    (vf_loss * weight).backward()
                    metrics["critic/vf_loss"] += float(vf_loss.detach()) * weight / s.ppo_epochs
                    metrics["critic/vf_clipfrac"] += float(vf_clipfrac) * weight / s.ppo_epochs
                metrics["actor/pg_loss"] += float(pg_loss.detach()) * weight / s.ppo_epochs
                metrics["actor/entropy"] += float(entropy.detach()) * weight / s.ppo_epochs
                metrics["actor/ppo_kl"] += pg_metrics["actor/ppo_kl"] * weight / s.ppo_epochs
                metrics["actor/pg_clipfrac"] += pg_metrics["actor/pg_clipfrac"] * weight / s.ppo_epochs
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, s.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(self.value_head.parameters(), s.max_grad_norm)
            if math.isfinite(float(grad_norm)):
                self.actor_optim.step()
                if gae:
                    self.critic_optim.step()
        metrics.update({
            "actor/grad_norm": float(grad_norm),
            "actor/reward_kl_penalty": float((kl * mask_t).sum() / total_tokens),
            "critic/score/mean": float(sum(r.reward for r in rollouts) / len(rollouts)),
            "critic/values/mean": float((values_t * mask_t).sum() / total_tokens) if gae else 0.0,
            "critic/advantages/mean": float((advantages * mask_t).sum() / total_tokens),
            "response_length/mean": float(sum(len(r.response_ids) for r in rollouts) / len(rollouts)),
            "generated_tokens/mean": total_tokens / len(rollouts),
        })
        return metrics


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    from verl.utils.torch_functional import entropy_from_logits

    return entropy_from_logits(logits)
