"""verl custom reward: Gain Beyond RAG from the episode's selected passages (or, as options, answer-in-context or
support recall of the first ``rag_k`` of them, with no generator call).

Point verl at it with::

    reward.custom_reward_function.path=training/reward.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.generator_url=http://127.0.0.1:8000/v1
    +reward.custom_reward_function.reward_kwargs.generator_model=Qwen/Qwen2.5-14B-Instruct-GPTQ-Int4
    +reward.custom_reward_function.reward_kwargs.rag_cache=data/rag_cache.sqlite
    +reward.custom_reward_function.reward_kwargs.retriever=http://127.0.0.1:3000/retrieve

The agent loop puts the question and the selected passages in ``extra_fields``; verl's reward
manager hands them over in ``extra_info``. The frozen generator answers from them, GenAcc scores
the answer (span match, else the generator as yes/no judge), and the naive-RAG accuracy comes from
the SQLite cache that ``s3 precompute`` fills (a missing row is computed and stored).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from s3_agents.errors import DataError
from s3_agents.generator import Generator
from s3_agents.llm.openai_compat import OpenAICompatClient
from s3_agents.metrics import answer_in_context, support_recall
from s3_agents.rag_cache import RagCache
from s3_agents.retrievers import load_retriever
from s3_agents.retrievers.base import Retriever
from s3_agents.reward import GENERATOR_FREE, RewardVariant, context_reward
from s3_agents.scoring import ascore_episode
from s3_agents.types import Passage

__all__ = ["compute_score"]


@functools.cache
def _generator(url: str | None, model: str | None, api_key: str | None, timeout: float, retries: int) -> Generator:
    if url is None:
        return Generator.from_env()
    if not model:
        raise ValueError("reward_kwargs.generator_model is required with generator_url (the served model's name)")
    return Generator(OpenAICompatClient(url, model, api_key=api_key, timeout=timeout, retries=retries))


@functools.cache
def _cache(path: str, retriever: str, generator: str, k: int) -> RagCache:
    return RagCache(path, retriever_id=retriever, generator_id=generator, k=k)


@functools.cache
def _retriever(location: str) -> Retriever:
    return load_retriever(location)


def _answers(ground_truth: Any) -> list[str]:
    target = ground_truth.get("target") if isinstance(ground_truth, dict) else ground_truth
    if isinstance(target, str):
        return [target]
    return [str(a) for a in (target if target is not None else [])]


def _context(items: Sequence[dict[str, Any]] | None) -> list[Passage]:
    return [Passage(id=str(d.get("id", "")), title=str(d.get("title", "")), text=str(d.get("text", "")))
            for d in (items if items is not None else [])]


async def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                        extra_info: dict[str, Any] | None = None, *, generator_url: str | None = None,
                        generator_model: str | None = None,
                        api_key: str | None = None, rag_cache: str = "rag_cache.sqlite", retriever: str | None = None,
                        rag_k: int = 3, variant: RewardVariant = "gbr", judge: bool = True, timeout: float = 300.0,
                        retries: int = 3, **kwargs: Any) -> dict[str, float]:
    """Gain Beyond RAG of one episode (or a reward without a generator), with its parts for logging.

    Args:
        data_source: The row's data source (logged by verl; not used).
        solution_str: The decoded response (not used: the passages come structured in ``extra_info``).
        ground_truth: ``{"question": ..., "target": [gold answers]}``, and ``"supporting_ids"`` where the data
            has them (``s3 data hotpotqa`` ...).
        extra_info: The row's ``extra_info`` plus the agent loop's fields (``s3_question``, ``s3_context``...).
        generator_url: OpenAI-compatible endpoint of the frozen generator (default: ``$S3_GENERATOR_URL``).
        generator_model: Its model name (default: ``$S3_GENERATOR_MODEL``).
        api_key: Endpoint key, if any.
        rag_cache: SQLite file of naive-RAG baselines (``s3 precompute`` / ``s3 train prepare``).
        retriever: Index directory or URL of the training retriever: names the cache rows
            (:meth:`RagCache.retriever_key`), and computes a missing baseline (without it a missing
            baseline is an error).
        rag_k: Documents of naive RAG (s3: 3).
        variant: ``"gbr"`` (paper: acc - acc_rag) or ``"gbr+acc"`` (s3 code: 2*acc - acc_rag) or ``"acc"``; or,
            with no generator call, ``"context"`` (a gold answer in the first ``rag_k`` passages) or ``"support"``
            (share of the supporting passages among them); see :func:`~s3_agents.reward.context_reward`.
        judge: Ask the generator as yes/no judge when span match fails (GenAcc); ``False``: span match only.
        timeout: Seconds per generator request.
        retries: Generator retries before :class:`~s3_agents.errors.LLMUnavailableError`.
        **kwargs: verl's extra arguments (ignored).

    Returns:
        ``{"score", "acc", "acc_rag", "em", "f1", "in_context", "support_recall", "num_selected", "searches"}``;
        ``in_context`` and ``support_recall`` are of the whole context (``support_recall`` NaN without supporting
        ids); the generator's ``acc``, ``acc_rag``, ``em`` and ``f1`` are NaN under a reward without a generator.

    Example:
        >>> await compute_score("nq", "", {"question": "Who founded Gritia?", "target": ["Kaemia Tritrir"]},
        ...                     {"s3_context": [...]}, generator_url="http://127.0.0.1:8000/v1",
        ...                     generator_model="qwen", rag_cache="rag.sqlite", retriever="index/")  # doctest: +SKIP
        {'score': 1.0, 'acc': 1.0, 'acc_rag': 0.0, 'em': 1.0, 'f1': 1.0, 'num_selected': 3.0, 'searches': 2.0}
    """
    info = dict(extra_info or {})
    truth = ground_truth if isinstance(ground_truth, dict) else {}
    question = str(info.get("s3_question") or truth.get("question") or info.get("question") or "")
    if not question:
        raise DataError("the s3 reward needs the question: ground_truth.question or the agent loop's s3_question")
    answers = _answers(ground_truth)
    context = _context(info.get("s3_context"))
    ids = truth.get("supporting_ids")  # a numpy array once the row went through parquet
    supporting = [str(s) for s in (ids if ids is not None else [])]
    parts = {"in_context": answer_in_context(context, answers),
             "support_recall": support_recall(context, supporting) if supporting else float("nan"),
             "num_selected": float(len(context)), "searches": float(info.get("s3_searches", 0) or 0)}
    if variant in GENERATOR_FREE:
        nan = float("nan")
        reward = context_reward(context, answers, supporting, variant=variant, budget=int(rag_k))
        return {"score": float(reward), "acc": nan, "acc_rag": nan, "em": nan, "f1": nan, **parts}
    generator = _generator(generator_url, generator_model, api_key, float(timeout), int(retries))
    cache = _cache(str(rag_cache), RagCache.retriever_key(retriever), generator.name, int(rag_k))
    opener = functools.partial(_retriever, retriever) if retriever else None
    score = await ascore_episode(question, context, answers, generator, cache, retriever=opener,
                                 judge=generator.client if judge else None, variant=variant)
    return {
        "score": float(score.reward),
        "acc": float(score.acc),
        "acc_rag": float(score.acc_rag),
        "em": float(score.em),
        "f1": float(score.f1),
        **parts,
    }
