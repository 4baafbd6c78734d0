"""The ``s3`` command line.

- :mod:`~s3_agents.cli.application`: the Typer application (``app``) and the entry point (``main``);
- one module per command group: :mod:`~s3_agents.cli.index`, :mod:`~s3_agents.cli.serve`,
  :mod:`~s3_agents.cli.corpus`, :mod:`~s3_agents.cli.search`, :mod:`~s3_agents.cli.eval`;
- :mod:`~s3_agents.cli.options`: the shared options, and the helpers that open a retriever, an LLM client
  and a search configuration from them.
"""

from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, not on import: the application registers plugin command groups (``s3 train``) that
    # import this package's helpers themselves, so an eager import here is circular when a plugin comes first.
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("s3_agents.cli.application"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
