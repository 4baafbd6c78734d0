"""The searcher's reward: Gain Beyond RAG (the paper's), and two rewards that need no generator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from s3_agents.metrics import answer_in_context, support_recall
from s3_agents.types import Passage

__all__ = ["RewardVariant", "GENERATOR_FREE", "gain_beyond_rag", "context_reward"]

RewardVariant = Literal["gbr", "gbr+acc", "acc", "context", "support"]

GENERATOR_FREE: tuple[RewardVariant, ...] = ("context", "support")
"""Rewards computed from the selected passages alone, with no generator call (:func:`context_reward`)."""


def gain_beyond_rag(acc: float, acc_rag: float, variant: RewardVariant = "gbr") -> float:
    """The reward of one episode.

    Args:
        acc: Generator accuracy (GenAcc) with the searcher's context.
        acc_rag: Generator accuracy with naive top-k RAG context for the same question.
        variant: ``"gbr"``: ``acc - acc_rag``, the paper's Gain Beyond RAG. ``"gbr+acc"``:
            ``(acc - acc_rag) + acc = 2*acc - acc_rag``, what the s3 reference code optimises (both
            of its module flags on); on its training set, filtered to ``acc_rag == 0``, it is 0 or 2.
            ``"acc"``: ``acc`` alone.

    Example:
        >>> gain_beyond_rag(1.0, 0.0), gain_beyond_rag(1.0, 0.0, "gbr+acc"), gain_beyond_rag(0.0, 1.0)
        (1.0, 2.0, -1.0)
    """
    if variant == "gbr":
        return acc - acc_rag
    if variant == "gbr+acc":
        return 2 * acc - acc_rag
    if variant == "acc":
        return acc
    raise ValueError(f"variant must be 'gbr', 'gbr+acc' or 'acc' (the generator's rewards), got {variant!r}")


def context_reward(passages: Sequence[Passage], answers: Sequence[str], supporting_ids: Sequence[str], *,
                   variant: RewardVariant, budget: int = 3) -> float:
    """A reward without a generator, on the first ``budget`` passages of the context.

    Args:
        passages: The generator's context, in order.
        answers: Gold answers.
        supporting_ids: The question's supporting passage ids (``"support"`` needs them).
        variant: ``"context"``: 1 when a gold answer is in the context (answer-in-context). ``"support"``: the
            share of the supporting passages in the context (support recall).
        budget: Only the first ``budget`` passages count (naive RAG's k), so keeping more documents gains
            nothing.

    Raises:
        ValueError: For another variant, or ``"support"`` without supporting ids.

    Example:
        >>> ctx = [Passage("7", "Gritia", "Gritia lies on the Ashwater."), Passage("9", "Ashwater", "A river.")]
        >>> context_reward(ctx, ["Ashwater"], ["7", "12"], variant="context")
        1.0
        >>> context_reward(ctx, ["Ashwater"], ["7", "12"], variant="support"), context_reward(
        ...     ctx, ["Ashwater"], ["9"], variant="support", budget=1)
        (0.5, 0.0)
    """
    kept = list(passages)[:budget]
    if variant == "context":
        return answer_in_context(kept, answers)
    if variant == "support":
        if not supporting_ids:
            raise ValueError("the support reward needs the question's supporting passage ids (supporting_ids)")
        return support_recall(kept, supporting_ids)
    raise ValueError(f"variant must be one of {GENERATOR_FREE} (the rewards without a generator), got {variant!r}")
