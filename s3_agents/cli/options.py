"""Options shared by the ``s3`` commands, and the one place that turns options into a retriever, an LLM
client or a search configuration."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

__all__ = [
    "fail", "info", "usage", "quiet_loading",
    "check_server_options", "open_embedder", "open_retriever", "open_llm", "check_engine",
    "endpoint_or",
    "search_config", "reference_policy", "trained_name",
    "EmbedderOpt", "Engine", "Searcher", "GeneratorUrl", "GeneratorModel", "ApiKey", "LlmTimeout",
    "ConfigName",
]


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red and exit 1."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def info(message: str) -> None:
    """A dim note on stderr (stdout stays the command's output)."""
    typer.secho(message, err=True, fg=typer.colors.BRIGHT_BLACK)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Around model loading in a command whose output is the point (``s3 demo``): the libraries' progress bars
    (transformers' weights loaded and GGUF tensors de-quantised, the Hub's downloads; some of them tqdm bars no
    setting turns off) are dropped from stderr, and whatever else was written there is passed on when loading ends.
    """
    caught = io.StringIO()
    try:
        with redirect_stderr(caught):
            yield
    finally:
        kept = [part for part in re.split(r"[\r\n]", caught.getvalue())
                if part.strip() and not _PROGRESS_BAR.search(part)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")


_PROGRESS_BAR = re.compile(r"\|\s*\d+/\d+ \[")     # tqdm's "| 36/272 [00:01<00:05, 45.42it/s]"


@contextmanager
def usage(hint: str) -> Iterator[None]:
    """Around the code that checks an option's value: its ``ValueError`` becomes a usage error naming the
    option (exit 2). A problem of the data or the world (an ``S3Error``, some of them ValueErrors) passes on."""
    from s3_agents.errors import S3Error

    try:
        yield
    except S3Error:
        raise
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=hint) from err


EmbedderOpt = Annotated[str, typer.Option(
    "--embedder", "-e",
    help="Embedder spec: minilm (offline default), hashing[:dim], e5:<hf-model>, or any "
         "sentence-transformers model id / directory.")]
Engine = Annotated[str, typer.Option(
    help="Engine of the trained searcher: llama.cpp (fast) or transformers (the weights PPO trained).")]
Searcher = Annotated[str | None, typer.Option(
    "--searcher", help="Which shipped searcher to run (implies --trained): real (trained on real multi-hop "
                       "questions; the default) or world (trained on the benchmark world).")]
GeneratorUrl = Annotated[str | None, typer.Option(
    help="OpenAI-compatible endpoint of the generator; default: the policy's.")]
GeneratorModel = Annotated[str | None, typer.Option(help="Model name at --generator-url.")]
ApiKey = Annotated[str | None, typer.Option(envvar="OPENAI_API_KEY", help="API key for the LLM endpoints.")]
LlmTimeout = Annotated[float, typer.Option(
    "--timeout", min=1, help="Seconds to wait for an LLM endpoint's reply, per attempt (connecting and the "
                             "start-up check give up after 10 s).")]
ConfigName = Annotated[str, typer.Option("--config", help="<retrieved>-<selected>-<turns>, the paper's naming.")]


def open_embedder(spec: str, **options: Any) -> Any:
    """The embedder ``--embedder`` names; ``options`` (``device``, ``precision``, ``threads``, ``batch_size``) go
    to a sentence-transformers model and are ignored by the hashing embedder."""
    from s3_agents.embedders import load_embedder

    with usage("--embedder / --device"):
        return load_embedder(spec, **options)


def _demo_retriever(embedder_spec: str) -> Any:
    from s3_agents.corpus import load_demo_corpus
    from s3_agents.retrievers import FaissRetriever

    corpus = load_demo_corpus()
    embedder = open_embedder(embedder_spec)
    info(f"no index given: indexing the demo corpus ({len(corpus)} passages) in memory with {embedder_spec}")
    return FaissRetriever.from_passages(corpus.passages, embedder)


def open_retriever(index: str | None, url: str | None, *, api_key: str | None = None,
                   embedder: str = "minilm", nprobe: int | None = None, ef_search: int | None = None) -> Any:
    """The retriever a command was pointed at: ``--url`` server, ``--index`` directory, or the demo corpus.

    Every command that searches (``serve``, ``retrieve``, ``search``, ``eval``, ``precompute``) opens it here.
    ``api_key`` is the server's key (default: ``$S3_RETRIEVER_KEY``); ``nprobe`` / ``ef_search`` set a FAISS
    or Qdrant Edge index's search effort (default: the build's).
    """
    from s3_agents.retrievers import RemoteRetriever, load_retriever

    if index and url:
        raise typer.BadParameter("give --index or --url, not both")
    effort = {name: value for name, value in (("nprobe", nprobe), ("ef_search", ef_search)) if value is not None}
    if url:
        if effort:
            raise typer.BadParameter("--nprobe and --ef-search go with --index (a server sets its own)")
        with usage("--url"):
            return RemoteRetriever(url, api_key=api_key)
    retriever = load_retriever(index) if index else _demo_retriever(embedder)
    if effort:
        if not hasattr(retriever, "tune"):
            raise typer.BadParameter("--nprobe and --ef-search apply to a FAISS or Qdrant Edge index")
        with usage("--nprobe / --ef-search"):
            retriever.tune(**effort)
    return retriever


def open_llm(url: str | None, model: str | None, gguf: Path | None, api_key: str | None, role: str,
             hf: str | None = None, adapter: Path | None = None, timeout: float = 300.0,
             engine: str = "llama.cpp") -> Any:
    """The client that ``--<role>-url`` / ``-model`` / ``-gguf`` / ``-hf`` / ``-adapter`` / ``-engine`` name (role:
    policy, generator, judge): an endpoint (checked at once), transformers in-process, or llama.cpp in-process."""
    from s3_agents.llm import LlamaCppClient, OpenAICompatClient, TransformersClient, smollm2_gguf_path

    given = [f"--{role}-{name}" for name, value in (("url", url), ("gguf", gguf), ("hf", hf)) if value]
    if len(given) > 1:
        raise typer.BadParameter(f"give one of {' / '.join(given)}")
    check_engine(engine, f"--{role}-engine")
    if adapter and url:
        raise typer.BadParameter(f"--{role}-adapter goes with --{role}-gguf or --{role}-hf (or alone: SmolLM2), "
                                 f"not --{role}-url (load the adapter into the server: llama_cpp.server --lora_path)")
    if hf:
        return TransformersClient(hf, adapter=adapter)
    if adapter and engine == "transformers":
        if gguf:
            return TransformersClient(str(gguf.parent), gguf_file=gguf.name, adapter=adapter)
        path = smollm2_gguf_path()
        return TransformersClient(str(path.parent), gguf_file=path.name, adapter=adapter)
    if adapter:
        return LlamaCppClient(gguf, adapter=adapter)
    if url:
        if not model:
            raise typer.BadParameter(f"--{role}-model is required with --{role}-url (the served model's name)")
        with usage(f"--{role}-url"):
            client = OpenAICompatClient(url, model, api_key=api_key, timeout=timeout)
        client.check()
        return client
    if model:
        raise typer.BadParameter(f"--{role}-model needs --{role}-url")
    return LlamaCppClient(gguf)


def check_engine(engine: str, option: str = "--engine") -> None:
    """An engine name is llama.cpp or transformers."""
    if engine not in ("llama.cpp", "transformers"):
        raise typer.BadParameter(f"{option} must be llama.cpp or transformers, got {engine!r}")


def trained_name(searcher: str | None) -> Any:
    """The shipped searcher ``--searcher`` names (checked), or ``None`` for the default."""
    from s3_agents.trained import SEARCHERS

    if searcher is not None and searcher not in SEARCHERS:
        raise typer.BadParameter(f"--searcher must be one of {', '.join(SEARCHERS)}, got {searcher!r}")
    return searcher


def endpoint_or(url: str | None, model: str | None, api_key: str | None, role: str, fallback: Any,
                 timeout: float = 300.0) -> Any:
    """The client of ``--<role>-url`` / ``--<role>-model`` (generator, judge), or else ``fallback``."""
    if url:
        return open_llm(url, model, None, api_key, role, timeout=timeout)
    if model:
        raise typer.BadParameter(f"--{role}-model needs --{role}-url")
    return fallback


def reference_policy(policy: Any, prompt_format: str, tokenizer: str | None, model: str | None) -> Any:
    """``policy`` as ``--format`` wants it: as it is (chat), or in a :class:`~s3_agents.llm.ReferenceFormatClient`
    with the ``--policy-tokenizer`` (default: the ``--policy-model`` name, the ``--policy-hf`` model's own, or
    the in-process GGUF's file)."""
    if prompt_format == "chat":
        if tokenizer:
            raise typer.BadParameter("--policy-tokenizer goes with --format reference")
        return policy
    from s3_agents.llm import ReferenceFormatClient

    if tokenizer is None and model is None and hasattr(policy, "tokenizer"):  # --policy-hf: the model's own
        return ReferenceFormatClient(policy, policy.tokenizer)
    spec = tokenizer or model or getattr(policy, "model_path", None)
    if spec is None:
        raise typer.BadParameter("--format reference needs --policy-tokenizer (a hub id, folder or .gguf file)")
    with usage("--policy-tokenizer"):
        try:
            return ReferenceFormatClient(policy, str(spec))
        except OSError as err:
            raise ValueError(f"could not load the tokenizer {spec}: {err}") from err


def check_server_options(host: str, api_key: str | None, log_level: str, exposes: str) -> None:
    """The checks ``s3 serve`` and ``s3 mcp`` share: a key a client can send, a known log level, and a warning
    when a server bound beyond loopback has no key (``exposes``: what it would expose)."""
    from s3_agents.server import check_api_key
    from s3_agents.server.guards import is_loopback

    with usage("--api-key"):
        check_api_key(api_key)
    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("--log-level must be debug, info, warning or error")
    if not is_loopback(host) and not api_key:
        info(f"warning: binding {host} without --api-key exposes {exposes} to the network")


def search_config(name: str, hint: str = "--config", **overrides: Any) -> Any:
    """The :class:`~s3_agents.SearchConfig` an option names (``"8-3-3"``), with ``overrides``."""
    from s3_agents.config import SearchConfig

    with usage(hint):
        return SearchConfig.from_name(name, **overrides)
