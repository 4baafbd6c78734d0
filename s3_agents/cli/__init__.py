"""The ``s3`` command line.

- :mod:`~s3_agents.cli.app`: the Typer application and the entry point;
- one module per command group: :mod:`~s3_agents.cli.index`, :mod:`~s3_agents.cli.serve`,
  :mod:`~s3_agents.cli.corpus`, :mod:`~s3_agents.cli.search`, :mod:`~s3_agents.cli.eval`;
- :mod:`~s3_agents.cli.options`: the shared options, and the helpers that open a retriever, an LLM client
  and a search configuration from them.
"""

from s3_agents.cli.app import app, main

__all__ = ["app", "main"]
