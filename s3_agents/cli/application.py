"""The ``s3`` Typer application: every command group registered here, then plugins (``s3 train``)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated

import typer

from s3_agents.cli.corpus import corpus_app, data_app
from s3_agents.cli.eval import eval_command
from s3_agents.cli.index import index_app
from s3_agents.cli.mcp_command import mcp_command
from s3_agents.cli.options import fail
from s3_agents.cli.search import demo, precompute, search
from s3_agents.cli.serve import retrieve, serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="s3",
    help="s3-agents: search agents for retrieval-augmented generation.\n\n"
         "Start with `s3 serve` (serves a demo corpus) and `s3 retrieve \"question\"`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_debug = False


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help="On a failure, print the traceback as well as the message.")] = False) -> None:
    global _debug
    _debug = debug


app.add_typer(index_app, name="index")
app.command("serve")(serve)
app.command("retrieve")(retrieve)
app.add_typer(corpus_app, name="corpus")
app.add_typer(data_app, name="data")
app.command("search")(search)
app.command("demo")(demo)
app.command("precompute")(precompute)
app.command("eval")(eval_command)
app.command("mcp")(mcp_command)


def _register_plugins() -> None:
    """Sub-commands from installed packages (entry point group ``s3_agents.cli``), e.g. ``s3 train``.

    The core names no plugin: the ``training`` package registers ``train`` in pyproject.toml. A
    plugin that fails to import (its extra not installed) becomes a command that says how to install it.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group="s3_agents.cli"):
        try:
            app.add_typer(entry.load(), name=entry.name)
        except ImportError as err:
            _add_missing(entry.name, err)


def _add_missing(name: str, err: ImportError) -> None:
    message = f"`s3 {name}` is unavailable ({err}); install its extra, e.g. pip install \"s3-agents[train]\""

    @app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 help=f"(unavailable: {err})")
    def missing() -> None:
        fail(message)


_register_plugins()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``s3`` console script.

    A failure of the world (an :class:`~s3_agents.errors.S3Error`: bad data, a server down; an ``OSError``: a
    missing file, a full disk; an ``ImportError``: an extra not installed) is one line, with its traceback under
    ``--debug``. Option values are checked by the commands (usage errors, exit 2). Anything else is a bug and
    keeps its traceback.
    """
    from s3_agents.errors import S3Error

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading bars in CLI output
    logging.getLogger("s3_agents").setLevel(logging.INFO)
    try:
        app(args=argv, prog_name="s3")  # standalone: usage errors exit 2 with click's message
    except (S3Error, OSError, ImportError) as err:
        if _debug:
            traceback.print_exc()
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(1)
