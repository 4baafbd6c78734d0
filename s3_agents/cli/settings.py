"""Command options declared once, by a settings dataclass: each field is an option, its name, default and help.

A field's help is its entry in the dataclass's ``Attributes:`` (or ``Args:``) docstring section, so the docs of
the class and the ``--help`` of every command built from it cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import click
import typer

from s3_agents.cli.options import usage

__all__ = ["field_help", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])
_SECTION = re.compile(r"^\s*(Attributes|Args):\s*$")
_ENTRY = re.compile(r"^(\s*)(\w+)(?: \([^)]*\))?:\s*(.*)$")


def field_help(cls: type) -> dict[str, str]:
    """Each field's description in the ``Attributes:`` / ``Args:`` docstring section of ``cls`` or of the base
    class that declares it, on one line.

    Example:
        >>> from s3_agents.config import ServerLimits
        >>> field_help(ServerLimits)["max_topk"], field_help(ServerLimits)["body_timeout"]
        ('Largest ``topk``.', 'Seconds a client has to send its whole body (then 408).')
    """
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if "__doc__" in vars(klass) and klass is not object:
            helps.update(_documented(klass.__doc__ or ""))
    return helps


def _documented(doc: str) -> dict[str, str]:
    helps: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    inside, indent, name = False, None, None
    for line in lines:
        if _SECTION.match(line):
            inside, indent, name = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            name = None
            continue
        entry = _ENTRY.match(line)
        depth = len(line) - len(line.lstrip())
        if indent is None and entry:
            indent = depth
        if depth < (indent or 0):
            inside = False
        elif entry and depth == indent:
            name = entry.group(2)
            helps[name] = entry.group(3)
        elif name is not None:
            helps[name] += " " + line.strip()
    return helps


def _plain(text: str) -> str:
    """Docstring markup out of a help text: ````topk```` -> ``topk``, ``:class:`~a.b.Client``` -> ``Client``."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def _option(annotation: Any, help_text: str, flags: Sequence[str]) -> Any:
    """``annotation`` with its ``typer.Option``: a ``Literal`` of strings becomes a choice of them."""
    bare = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    choices = typing.get_args(bare[0]) if typing.get_origin(bare[0]) is typing.Literal else ()
    if choices:
        return Annotated[str | None if len(bare) < len(typing.get_args(annotation)) else str,
                         typer.Option(*flags, help=help_text, click_type=click.Choice(choices))]
    return Annotated[annotation, typer.Option(*flags, help=help_text)]


def settings_options(cls: type, param: str, *, include: Collection[str] | None = None, exclude: Collection[str] = (),
                     flags: Mapping[str, Sequence[str]] | None = None, defaults: Mapping[str, Any] | None = None,
                     hint: str | None = None) -> Callable[[F], F]:
    """Give a typer command one ``--option`` per field of the dataclass ``cls``, and pass it their values as one
    ``cls`` instance, the parameter ``param``.

    Option names are the field names in kebab case; defaults and types are the fields'; the help is
    :func:`field_help`'s. A value the dataclass refuses (its ``__post_init__`` raises ``ValueError``) is a usage
    error (exit 2) naming ``hint`` (default: the class).

    Args:
        cls: A dataclass whose fields have defaults.
        param: The command's parameter that receives the instance (left out of the command's options).
        include: Only these fields get an option (default: all); the others keep their defaults.
        exclude: Fields that get no option (they keep their defaults).
        flags: A field's option names where they are not its own (``{"prompt_format": ["--format"]}``), as
            ``typer.Option`` takes them.
        defaults: A field's default in this command where it differs from the class's.
        hint: What a usage error names.

    Example:
        >>> from s3_agents.config import ServerLimits
        >>> @settings_options(ServerLimits, "limits")
        ... def serve(port: int = 3000, *, limits: ServerLimits) -> None:
        ...     print(port, limits.max_topk)
        >>> "max_topk" in inspect.signature(serve).parameters
        True
        >>> serve(port=1, max_topk=7)
        1 7
    """
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    flags, defaults = dict(flags or {}), dict(defaults or {})
    chosen = [f for f in dataclasses.fields(cls)
              if f.init and f.name not in exclude and (include is None or f.name in include)]
    unknown = (set(flags) | set(defaults) | set(include or ())) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    for f in chosen:
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has no default: it cannot become an option")
        if f.name not in helps:
            raise TypeError(f"{cls.__name__}.{f.name} has no entry in the class docstring's Attributes section")

    def decorate(func: F) -> F:
        own = typing.get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
        kept = [p.replace(annotation=own.get(p.name, p.annotation)) for p in signature.parameters.values()
                if p.name != param]
        added = [inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY,
            default=defaults.get(f.name, f.default if f.default is not dataclasses.MISSING
                                 else f.default_factory()),  # type: ignore[misc]
            annotation=_option(hints[f.name], _plain(helps[f.name]), flags.get(f.name, ()))) for f in chosen]
        clash = {p.name for p in kept} & {p.name for p in added}
        if clash:
            raise TypeError(f"{func.__name__} already has the parameters {sorted(clash)} that {cls.__name__} adds")

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in chosen if f.name in kwargs}
            with usage(hint or cls.__name__):
                settings = cls(**values)
            return func(*args, **kwargs, **{param: settings})

        parameters = [p for p in kept if p.kind is not inspect.Parameter.VAR_KEYWORD]
        positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
        command.__signature__ = signature.replace(parameters=[*positional, *keyword, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*positional, *keyword, *added]}
        if signature.return_annotation is not inspect.Signature.empty:
            command.__annotations__["return"] = own.get("return", signature.return_annotation)
        del command.__wrapped__                 # typer must read the new signature, not the function's
        return command  # type: ignore[return-value]

    return decorate
