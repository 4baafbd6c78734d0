"""verl agent loop ``s3_searcher``: one rollout = one run of the s3 search graph.

verl's ``AgentLoopWorker`` builds one loop per dataset row whose ``agent_name`` is ``s3_searcher``
and calls :meth:`S3AgentLoop.run`. The loop runs **our** LangGraph search graph with a
:class:`~s3_agents.training.policy.VerlPolicy`, so every generation goes through verl's rollout server as token
ids, and returns the episode as an ``AgentLoopOutput``: the prompt, the response (the searcher's
turns and the inserted ``<information>`` blocks and feedback) and the state mask (1 exactly on
generated tokens). The selected passages travel in ``extra_fields`` to the reward function.

Select it in verl's config with ``actor_rollout_ref.rollout.agent.agent_loop_config_path`` pointing
at ``training/config/agent_loop.yaml``, whose entry passes the retriever and loop settings::

    - name: s3_searcher
      _target_: s3_agents.training.agent_loop.S3AgentLoop
      retriever: http://127.0.0.1:3000/retrieve     # or an index directory
      search: 8-3-3
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    DictConfigWrap,
    register,
)
from verl.utils.dataset.rl_dataset import RLHFDataset

from s3_agents.config import SearchConfig
from s3_agents.errors import DataError
from s3_agents.graph import SearchContext, build_search_graph
from s3_agents.graph.context import assemble_context
from s3_agents.retrievers import RemoteRetriever, load_retriever
from s3_agents.retrievers.base import Retriever
from s3_agents.training.policy import ResponseBudgetSpent, VerlPolicy
from s3_agents.types import Passage

__all__ = ["S3AgentLoop", "InlineRetriever", "episode_fields"]


@functools.cache
def _graph() -> Any:
    return build_search_graph()


class InlineRetriever(Retriever):
    """An in-process retriever whose async searches run in the calling thread, not a worker thread.

    For CPU runs where the policy also runs in this process: torch work in two threads contends for
    the cores (an embedder's query in a worker thread made the next generation 1.7x slower on 2 cores).
    Remote retrievers (HTTP) never need it.
    """

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        return self.inner.search(queries, k)

    async def asearch(self, queries: Sequence[str], k: int = 3) -> list[list[Passage]]:
        return self.inner.search(list(queries), k)


@functools.cache
def _shared_retriever(location: str) -> Retriever:
    """One retriever per worker process (verl builds a loop per sample)."""
    return load_retriever(location)


def episode_fields(state: dict[str, Any], stop_reason: str) -> dict[str, Any]:
    """What the reward function needs from an episode, as plain JSON-able values."""
    return {
        "s3_question": state["question"],
        "s3_context": [{"id": p.id, "title": p.title, "text": p.text} for p in state["context"]],
        "s3_queries": list(state.get("queries", [])),
        "s3_searches": len(state.get("queries", [])),
        "s3_generations": len(state.get("outputs", [])),
        "s3_invalid": int(state.get("invalid", 0)),
        "s3_stop_reason": stop_reason,
    }


@register("s3_searcher")
class S3AgentLoop(AgentLoopBase):
    """The s3 searcher as a verl agent loop.

    Args:
        *args: verl's ``AgentLoopBase`` arguments (trainer config, server manager, tokenizer, ...).
        retriever: Index directory or retrieval-server URL (default: ``$S3_RETRIEVER``), or a
            :class:`~s3_agents.retrievers.Retriever` when built in Python.
        search: Loop shape ``"<retrieved>-<selected>-<turns>"`` (paper: ``"8-3-3"``).
        initial_k: Naive-RAG documents in the first prompt (s3: 3).
        max_turn_tokens: Token budget of one searcher generation (s3: 500).
        max_obs_tokens: Cap on one inserted observation, in tokens (s3: 1400).
        constrained: Sample every turn under the action grammar (:func:`~s3_agents.protocol.grammar.action_grammar`);
            the rollout server must take ``sampling_params["grammar"]`` (``TransformersServer`` does).
        query_spans: With ``constrained``, each turn's grammar allows as queries only the capitalised spans of
            the documents shown so far (``SearchConfig.query_spans``).
        max_context_docs: Cap on the generator's context documents (``None``: the reference rule, no cap).
        fill_context: Fill what the searcher leaves of the cap with the initial documents, in rank order.
        **kwargs: Passed to ``AgentLoopBase``.

    Example:
        >>> loop = S3AgentLoop.standalone(server, tokenizer, retriever=retriever)   # doctest: +SKIP
        >>> row = {"raw_prompt": [{"role": "user", "content": "Who founded Gritia?"}]}
        >>> out = await loop.run({"temperature": 0.6}, **row)                       # doctest: +SKIP
        >>> out.extra_fields["s3_context"]                                          # doctest: +SKIP
    """

    def __init__(self, *args: Any, retriever: str | Retriever | None = None, search: str = "8-3-3",
                 initial_k: int = 3, max_turn_tokens: int = 500, max_obs_tokens: int | None = 1400,
                 constrained: bool = False, query_spans: bool = False, max_context_docs: int | None = None,
                 fill_context: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        location = retriever if retriever is not None else os.environ.get("S3_RETRIEVER")
        if location is None:
            raise ValueError("the s3_searcher agent loop needs a retriever: set `retriever:` in the agent-loop "
                             "YAML (index directory or http://host:port/retrieve) or $S3_RETRIEVER")
        self.retriever = location if isinstance(location, Retriever) else _shared_retriever(str(location))
        self.search_config = SearchConfig.from_name(search, initial_k=initial_k, max_new_tokens=max_turn_tokens,
                                                    constrained=constrained, query_spans=query_spans,
                                                    max_context_docs=max_context_docs,
                                                    fill_context=fill_context)
        self.max_obs_tokens = max_obs_tokens
        self.response_length = int(self.rollout_config.response_length)
        self.last_state: dict[str, Any] | None = None
        """The final graph state of the latest :meth:`run` (messages, outputs, blocks...), for inspection."""

    @classmethod
    def standalone(cls, server_manager: Any, tokenizer: Any, *, retriever: str | Retriever, prompt_length: int = 2048,
                   response_length: int = 2048, **kwargs: Any) -> S3AgentLoop:
        """The loop outside a verl trainer (notebooks, tests): a minimal trainer config around it.

        ``server_manager`` is anything with verl's ``generate(request_id, *, prompt_ids, sampling_params)``,
        e.g. :class:`~s3_agents.training.local_server.TransformersServer`. An in-process retriever is wrapped in
        :class:`InlineRetriever` (the model runs in this process too).
        """
        config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": prompt_length,
                                                                     "response_length": response_length}},
                                   "data": {}})
        if isinstance(retriever, str):
            retriever = _shared_retriever(retriever)
        if isinstance(retriever, Retriever) and not isinstance(retriever, RemoteRetriever):
            retriever = InlineRetriever(retriever)
        return cls(DictConfigWrap(config), server_manager, tokenizer, None, RLHFDataset, DictConfigWrap(config.data),
                   retriever=retriever, **kwargs)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Run one episode for the dataset row in ``kwargs`` (``extra_info.question`` or ``raw_prompt``)."""
        question = _question(kwargs)
        policy = VerlPolicy(self.server_manager, self.continuous_token_builder, self.tokenizer, sampling_params,
                            response_length=self.response_length, max_obs_tokens=self.max_obs_tokens,
                            cap_prompt=self._cap_text_prompt_length)
        context = SearchContext(policy=policy, retriever=self.retriever, config=self.search_config)
        started = time.perf_counter()
        state: dict[str, Any] = {"question": question, "blocks": []}
        stop_reason = None
        try:
            async for values in _graph().astream({"question": question}, context=context, stream_mode="values"):
                state = values
        except ResponseBudgetSpent:
            stop_reason = "response_length"
        if stop_reason is None:
            stop_reason = state["stop_reason"]
        else:  # cut off mid-episode: the generator gets what was selected so far
            state = {**state, "context": assemble_context(state["blocks"], self.search_config)}
        elapsed = time.perf_counter() - started
        self.last_state = state

        n = self.response_length
        fields = episode_fields(state, stop_reason)
        fields["s3_truncated_observations"] = policy.truncated_observations
        return AgentLoopOutput(
            prompt_ids=policy.prompt_ids or [],
            response_ids=policy.response_ids[:n],
            response_mask=policy.response_mask[:n],
            response_logprobs=policy.response_logprobs[:n] if policy.response_logprobs else None,
            num_turns=len(state.get("messages", [])),
            metrics=AgentLoopMetrics(generate_sequences=policy.generate_seconds,
                                     tool_calls=max(0.0, elapsed - policy.generate_seconds)),
            extra_fields=fields,
        )


def _question(row: dict[str, Any]) -> str:
    extra = row.get("extra_info") or {}
    if extra.get("question"):
        return str(extra["question"])
    for message in reversed(list(row.get("raw_prompt") or [])):
        if message.get("role") == "user":
            return str(message["content"])
    raise DataError("an s3_searcher row needs extra_info.question or a user message in its prompt")
