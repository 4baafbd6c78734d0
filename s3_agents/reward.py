"""Gain Beyond RAG: the searcher's reward."""

from __future__ import annotations

from typing import Literal

__all__ = ["RewardVariant", "gain_beyond_rag"]

RewardVariant = Literal["gbr", "gbr+acc", "acc"]


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
    raise ValueError(f"variant must be 'gbr', 'gbr+acc' or 'acc', got {variant!r}")
