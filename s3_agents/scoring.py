"""Score an episode's context: the generator's answer from it against the naive-RAG baseline (Gain Beyond RAG).

One implementation for every caller: training's reward (``training.reward.compute_score``), the CLI and
scripts. The baseline comes from the :class:`~s3_agents.rag_cache.RagCache` (``s3 precompute`` fills it);
a missing row is computed with the retriever and stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s3_agents._tasks import run_sync
from s3_agents.errors import DataError
from s3_agents.generator import Generator
from s3_agents.llm.base import ChatClient
from s3_agents.metrics import agen_acc, exact_match, f1_score
from s3_agents.rag_cache import RagCache
from s3_agents.retrievers.base import Retriever
from s3_agents.reward import RewardVariant, gain_beyond_rag
from s3_agents.types import Passage

__all__ = ["EpisodeScore", "ascore_episode", "score_episode"]


@dataclass(frozen=True)
class EpisodeScore:
    """How an episode's context served the generator.

    Attributes:
        answer: The generator's answer from the episode's context.
        acc: Its GenAcc (span match, else the judge).
        em: Exact match.
        f1: Token F1.
        rag_answer: The answer from naive top-k RAG.
        acc_rag: Its GenAcc.
        reward: ``gain_beyond_rag(acc, acc_rag, variant)``.
    """

    answer: str
    acc: float
    em: float
    f1: float
    rag_answer: str
    acc_rag: float
    reward: float


async def ascore_episode(question: str, context: Sequence[Passage], answers: Sequence[str], generator: Generator,
                         rag_cache: RagCache, *, retriever: Retriever | Callable[[], Retriever] | None = None,
                         judge: ChatClient | None = None, variant: RewardVariant = "gbr") -> EpisodeScore:
    """Answer from ``context``, score it, and compare with the cached (or computed) naive-RAG baseline.

    Args:
        question: The question.
        context: The passages the searcher selected (``state["context"]``).
        answers: Gold answers.
        generator: The frozen generator.
        rag_cache: Baselines of this retriever, generator and ``k``.
        retriever: Computes a baseline the cache lacks (and stores it); or a function that opens it,
            called only then.
        judge: GenAcc's yes/no judge when span match fails; ``None`` for span match only.
        variant: ``gbr`` (the paper), ``gbr+acc`` or ``acc``.

    Raises:
        ValueError: If the cache has no baseline and no ``retriever`` is given.

    Example:
        >>> state = searcher.search(question)                                          # doctest: +SKIP
        >>> score = asyncio.run(ascore_episode(question, state["context"], answers, generator, cache,
        ...                                    retriever=retriever))                    # doctest: +SKIP
    """
    answer = await generator.aanswer(question, list(context))
    acc = await agen_acc(answer, answers, judge)
    baseline = await asyncio.to_thread(rag_cache.get, question)
    if baseline is None:
        if retriever is None:
            raise DataError(f"no naive-RAG baseline for {question!r} in {rag_cache.path}: run `s3 precompute` with "
                             "the same retriever and generator, or give a retriever to compute it here")
        if not isinstance(retriever, Retriever):
            retriever = retriever()
        baseline = await rag_cache.acompute(question, answers, retriever, generator, judge)
    return EpisodeScore(answer=answer, acc=acc, em=exact_match(answer, answers), f1=f1_score(answer, answers),
                        rag_answer=baseline.answer, acc_rag=baseline.acc,
                        reward=gain_beyond_rag(acc, baseline.acc, variant))


def score_episode(question: str, context: Sequence[Passage], answers: Sequence[str], generator: Generator,
                  rag_cache: RagCache, **kwargs: object) -> EpisodeScore:
    """Blocking :func:`ascore_episode`; works inside a running event loop too (a notebook cell)."""
    return run_sync(ascore_episode(question, context, answers, generator, rag_cache, **kwargs))  # type: ignore[arg-type]
