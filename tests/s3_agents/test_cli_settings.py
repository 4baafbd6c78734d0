"""Options declared once: a settings dataclass's fields become a command's options (s3_agents.cli.settings)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from s3_agents.cli.settings import field_help, settings_options
from s3_agents.config import ServerLimits
from tests.conftest import run_main


@dataclasses.dataclass(frozen=True)
class Knobs:
    """Two knobs.

    Attributes:
        width: How wide, in
            two lines.
        depth: How deep (``positive``).
    """

    width: int = 3
    depth: float = 1.5

    def __post_init__(self) -> None:
        if self.depth <= 0:
            raise ValueError("depth must be positive")


def test_field_help_reads_the_attributes_section() -> None:
    assert field_help(Knobs) == {"width": "How wide, in two lines.", "depth": "How deep (``positive``)."}
    assert set(field_help(ServerLimits)) == {f.name for f in dataclasses.fields(ServerLimits)}


def test_a_command_gets_one_option_per_field_and_one_instance() -> None:
    seen = []

    @settings_options(Knobs, "knobs")
    def command(name: str = "x", *, knobs: Knobs) -> None:
        seen.append((name, knobs))

    parameters = inspect.signature(command).parameters
    assert list(parameters) == ["name", "width", "depth"]
    assert parameters["depth"].default == 1.5
    command(name="y", width=5, depth=2.0)
    command()
    assert seen == [("y", Knobs(5, 2.0)), ("x", Knobs())]

    @dataclasses.dataclass
    class Missing:
        """No attributes section."""

        size: int = 1

    with pytest.raises(TypeError, match="no entry in the class docstring"):
        settings_options(Missing, "m")


def test_s3_serve_takes_every_server_limit_with_its_default_and_help(capsys) -> None:
    code, out, _ = run_main(capsys, "serve", "--help")
    assert code == 0
    flat = " ".join(out.replace("│", " ").split())
    for limit in dataclasses.fields(ServerLimits):
        option = "--" + limit.name.replace("_", "-")
        assert option in flat and f"[default: {limit.default}]" in flat, option
    assert "Largest topk." in flat                                  # the docstring's help, markup removed
    code, _, err = run_main(capsys, "serve", "--default-topk", "5", "--max-topk", "2")
    assert code == 2 and "the server's limits" in err and "default_topk must not exceed max_topk" in err
    code, _, err = run_main(capsys, "serve", "--body-timeout", "0")
    assert code == 2 and "body_timeout must be positive" in err
