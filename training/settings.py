"""The settings of a local PPO run, apart from the trainer so that the command line reads them without torch."""

from __future__ import annotations

import typing
from dataclasses import dataclass

__all__ = ["LocalSettings"]


@dataclass(frozen=True)
class LocalSettings:
    """A local PPO run.

    Attributes:
        steps: PPO steps in all (a resumed run continues up to this).
        batch_size: Episodes per step.
        save_every: Steps between checkpoints.
        search: Loop shape ``"<retrieved>-<selected>-<turns>"``.
        max_turn_tokens: Tokens per searcher turn.
        response_length: Token budget of one episode after its prompt.
        max_obs_tokens: Cap on an inserted observation, in tokens.
        constrained: Sample turns under the action grammar.
        query_spans: With ``constrained``, every query is one of the capitalised spans of the documents shown so
            far (``SearchConfig.query_spans``): RL chooses among names the searcher has read.
        temperature: Rollout sampling temperature (s3: 0.6).
        top_p: Rollout nucleus sampling (s3: 0.95).
        actor_lr: Adapter learning rate.
        critic_lr: Value-head learning rate.
        kl_coef: In-reward KL coefficient.
        kl_reference: The KL reference of a run that starts from ``init_adapter``: ``"init"`` (that adapter,
            frozen beside the trained copy: the policy RL started from, as in verl) or ``"base"`` (the adapter
            switched off: the untrained model). Without ``init_adapter`` both are the base model.
        entropy_coeff: Entropy bonus.
        variant: Reward: ``"gbr"``, ``"gbr+acc"`` or ``"acc"`` (the generator's); ``"context"`` or ``"support"``
            (no generator call: answer-in-context or support recall of the context's first 3 documents).
        judge: Use the generator as yes/no judge when span match fails.
        max_context_docs: Cap on the generator's context in training episodes (``None``: reference rule).
        fill_context: Fill what the searcher leaves of the cap with the initial documents, in rank order.
        initial_k: Naive-RAG documents in the first prompt (s3: 3; 5 lets a searcher keep the 4th or 5th within
            a 3-document cap).
        seed: Data order and sampling.
        engine: Rollout engine: ``"llama.cpp"`` (the base GGUF and the live adapter as a GGUF LoRA),
            ``"transformers"`` (the torch model; the path on CUDA) or ``"auto"`` (llama.cpp on a CPU when the base
            model's GGUF is known, else transformers).
        contexts: Episodes in flight at once on llama.cpp (one context each).
        reward_concurrency: Generator requests of the reward in flight at once: an episode's reward is requested
            as soon as it ends, while the next episodes roll out; match the generator server's parallel slots
            (llama.cpp's ``llama-server --parallel N``, vLLM; ``python -m llama_cpp.server`` answers one at a time).
        algorithm: ``"ppo"`` (GAE with the value head, the paper's) or ``"grpo"``.
        group_size: GRPO's samples per question (``batch_size`` must be a multiple of it).
        drop_uniform_groups: GRPO only: leave out of the update every group whose samples all scored the same
            (advantage 0, only a KL term; DAPO's dynamic-sampling filter without resampling). A step where no
            group disagrees makes no update. A warm start that samples almost deterministically gives many.
        bf16: bfloat16 autocast in the update (``None``: where the CPU or GPU supports it).
        micro_batch_tokens: Padded tokens per micro-batch of the update (rollouts sorted by length).
    """

    steps: int = 50
    batch_size: int = 8
    save_every: int = 5
    search: str = "5-3-3"
    max_turn_tokens: int = 100
    response_length: int = 1536
    max_obs_tokens: int | None = 600
    constrained: bool = True
    query_spans: bool = False
    temperature: float = 0.6
    top_p: float = 0.95
    actor_lr: float = 2e-5
    critic_lr: float = 1e-4
    kl_coef: float = 0.001
    kl_reference: str = "init"
    entropy_coeff: float = 0.001
    variant: str = "gbr"
    judge: bool = False
    max_context_docs: int | None = 3
    fill_context: bool = False
    initial_k: int = 3
    seed: int = 0
    engine: str = "auto"
    contexts: int = 2
    reward_concurrency: int = 4
    algorithm: str = "ppo"
    group_size: int = 4
    drop_uniform_groups: bool = False
    bf16: bool | None = None
    micro_batch_tokens: int = 2048

    def __post_init__(self) -> None:
        from s3_agents.config import SearchConfig
        from s3_agents.reward import RewardVariant

        # a loop shape this version can run, and query_spans only under the grammar
        SearchConfig.from_name(self.search, constrained=self.constrained, query_spans=self.query_spans)
        for name, least in (("steps", 1), ("batch_size", 1), ("save_every", 1), ("max_turn_tokens", 8),
                            ("initial_k", 1), ("contexts", 1), ("reward_concurrency", 1), ("micro_batch_tokens", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if self.max_context_docs is not None and self.max_context_docs < 1:
            raise ValueError(f"max_context_docs must be at least 1 or None, got {self.max_context_docs}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"rollouts sample: temperature must be > 0 and top_p in (0, 1], got {self.temperature} "
                             f"and {self.top_p}")
        choices = {"engine": ("auto", "llama.cpp", "transformers"), "algorithm": ("ppo", "grpo"),
                   "kl_reference": ("init", "base"), "variant": typing.get_args(RewardVariant)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}, got "
                                 f"{getattr(self, name)!r}")
        if self.algorithm == "grpo" and (self.group_size < 2 or self.batch_size % self.group_size):
            raise ValueError(f"GRPO needs a group size of 2 or more dividing the batch size ({self.batch_size}), "
                             f"got {self.group_size}")
        if self.drop_uniform_groups and self.algorithm != "grpo":
            raise ValueError("drop_uniform_groups compares the samples of a GRPO group: use algorithm grpo")
