"""Options declared once: a settings dataclass's fields become a command's options (s3_agents.cli.settings)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Literal

import pytest
import typer

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


def test_s3_serve_takes_every_server_limit_with_its_default_and_help(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
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


@dataclasses.dataclass(frozen=True)
class Shape:
    """A shape.

    Attributes:
        kind: Which, one of :class:`~pkg.mod.Kinds`.
        size: How big.
        hidden: Not an option here.
    """

    kind: Literal["round", "square"] = "round"
    size: int = 2
    hidden: bool = False


def test_include_flags_defaults_and_literal_choices() -> None:
    from typer.testing import CliRunner

    seen: list[Shape] = []

    @settings_options(Shape, "shape", include=("kind", "size"), flags={"kind": ("--form",)}, defaults={"size": 5})
    def command(*, shape: Shape) -> None:
        seen.append(shape)

    assert list(inspect.signature(command).parameters) == ["kind", "size"]
    app = typer.Typer()
    app.command()(command)
    runner = CliRunner()
    shown = " ".join(runner.invoke(app, ["--help"]).output.replace("│", " ").split())
    assert re.search(r"--form \S*round\|square\S* Which, one of Kinds\. \[default: round\]", shown)  # no markup
    assert re.search(r"--size \S+ How big\. \[default: 5\]", shown) and "--hidden" not in shown
    assert runner.invoke(app, ["--form", "square"]).exit_code == 0
    assert runner.invoke(app, ["--form", "oval"]).exit_code == 2
    assert seen == [Shape("square", 5)]
    with pytest.raises(TypeError, match=r"no fields \['shade'\]"):
        settings_options(Shape, "shape", flags={"shade": ("--s",)})


@pytest.mark.parametrize("command", ["search", "eval", "mcp"])
def test_searching_commands_take_the_retriever_policy_and_loop_options_declared_once(capsys, monkeypatch,
                                                                                      command: str) -> None:
    from s3_agents.cli.searching import PolicyOptions, RetrieverOptions

    monkeypatch.setenv("COLUMNS", "250")             # no option name cut short in the help table

    code, out, _ = run_main(capsys, command, "--help")
    assert code == 0
    flat = " ".join(out.replace("│", " ").split())
    for cls in (RetrieverOptions, PolicyOptions):
        for name in field_help(cls):
            assert "--" + name.replace("_", "-") in flat, (command, name)
    assert re.search(r"--index,? -i|-i,? --index", flat)
    assert "Key of a retrieval server started with s3 serve --api-key" in flat     # RetrieverOptions' docstring
    assert re.search(r"--format \S*chat\|reference", flat)                        # SearchConfig's Literal
    assert ("--turn-tokens" in flat) == (command == "eval")
    code, _, err = run_main(capsys, command, "--nprobe", "0", *(["q"] if command == "search" else []))
    assert code == 2 and "the retriever" in err and "--nprobe must be at least 1" in err


def test_eval_turn_tokens_default_is_the_search_config_s() -> None:
    from s3_agents.cli.eval import eval_command
    from s3_agents.config import SearchConfig

    assert inspect.signature(eval_command).parameters["max_new_tokens"].default == SearchConfig().max_new_tokens


def test_trained_searcher_refuses_policy_options() -> None:
    import typer

    from s3_agents.cli.searching import PolicyOptions, RetrieverOptions, open_search
    from s3_agents.config import SearchConfig

    with pytest.raises(typer.BadParameter, match="drop --policy-url, --policy-tokenizer, --format"):
        open_search(RetrieverOptions(), PolicyOptions(policy_url="http://x/v1", policy_tokenizer="t"),
                    SearchConfig(prompt_format="reference"), "8-3-3", trained=True)


def test_s3_train_local_takes_every_local_setting(capsys, monkeypatch) -> None:
    from s3_agents.training.settings import LocalSettings

    monkeypatch.setenv("COLUMNS", "250")

    code, out, _ = run_main(capsys, "train", "local", "--help")
    assert code == 0
    flat = " ".join(out.replace("│", " ").split())
    renamed = {"max_turn_tokens": "--turn-tokens", "bf16": "--bf16"}
    for setting in dataclasses.fields(LocalSettings):
        assert renamed.get(setting.name, "--" + setting.name.replace("_", "-")) in flat, setting.name
    assert re.search(rf"--turn-tokens \S+ Tokens per searcher turn\. \[default: {LocalSettings().max_turn_tokens}\]",
                     flat)
    code, _, err = run_main(capsys, "train", "local", "--train", "t.parquet", "--retriever", "r", "--generator-url",
                            "http://x", "--generator-model", "m", "--algorithm", "grpo", "--batch-size", "6")
    assert code == 2 and "the run's settings" in err and "GRPO needs a group size" in err
    with pytest.raises(ValueError, match="variant must be gbr"):
        LocalSettings(variant="gain")
