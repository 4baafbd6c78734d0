"""`s3 train local`: a PPO run killed mid-way resumes to the same step count; its settings and metrics."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from s3_agents.qa import load_qa
from s3_agents.retrievers import build_index
from s3_agents.training.data import prepare_dataset
from s3_agents.training.local import METRIC_COLUMNS, LocalRun, LocalSettings, plot_metrics
from s3_agents.worlds import build_world, write_world
from tests.conftest import cli_env, run_main, s3_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory, minilm):
    root = tmp_path_factory.mktemp("local-ppo")
    world = build_world(300, seed=5)
    paths = write_world(world, root / "world")
    build_index(world.passages, root / "index", embedder=minilm, show_progress=False)
    prepare_dataset(load_qa(paths["train"])[:4], root / "train.parquet")
    return root, root / "index"


def _command(root: Path, index: Path, llama_server, model: Path, steps: int) -> list[str]:
    return s3_command("train", "local", "--train", str(root / "train.parquet"), "--retriever", str(index),
                      "--generator-url", llama_server.url, "--generator-model", llama_server.model,
                      "--rag-cache", str(root / "rag.sqlite"), "--out", str(root / "run"), "--model", str(model),
                      "--steps", str(steps), "--batch-size", "2", "--save-every", "1", "--search", "2-1-1",
                      "--turn-tokens", "60", "--engine", "transformers")


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_killed_run_resumes_to_the_same_step_count(setup, llama_server, tiny_dir, capsys) -> None:
    root, index = setup
    run = root / "run"
    proc = subprocess.Popen(_command(root, index, llama_server, tiny_dir, 2), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "latest").is_file():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint in 10 minutes"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)     # mid-way: after step 1's checkpoint (step 2 waits on the generator)
    proc.wait()
    assert (run / "checkpoints" / "latest").read_text() == "step_1"

    # Resumed with more steps but no time left: it stops (with a checkpoint) after the first step it runs.
    done = run_main(capsys, *_command(root, index, llama_server, tiny_dir, 3)[3:], "--max-minutes", "0")
    assert done.code == 0, done.out + done.err
    assert "step 2:" in done.out and "rollouts on transformers" in done.out
    assert "1 step short of --steps 3" in done.out
    rows = _rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2] and list(rows[0]) == METRIC_COLUMNS
    assert all(0.0 <= float(r["valid_action_rate"]) <= 1.0 and float(r["tokens"]) > 0 for r in rows)
    assert (run / "checkpoints" / "latest").read_text() == "step_2"
    assert (run / "reward.png").stat().st_size > 0 and (run / "adapter" / "adapter_config.json").is_file()
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))


def test_other_settings_do_not_resume_a_run(setup, tmp_path) -> None:
    root, index = setup
    LocalRun(tmp_path, [{"q": 1}], object(), {}, LocalSettings(steps=3))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step_1")
    LocalRun(tmp_path, [{"q": 1}], object(), {}, LocalSettings(steps=9))          # more steps: fine
    with pytest.raises(ValueError, match="actor_lr"):
        LocalRun(tmp_path, [{"q": 1}], object(), {}, LocalSettings(actor_lr=1.0))
    with pytest.raises(ValueError, match="no training rows"):
        LocalRun(tmp_path / "x", [], object(), {})
    LocalRun(tmp_path, [{"q": 1}], object(), {}, LocalSettings(steps=3, engine="transformers", contexts=4))
    with pytest.raises(ValueError, match="kl_reference must be init or base"):
        LocalRun(tmp_path / "k", [{"q": 1}], object(), {}, LocalSettings(kl_reference="warm"))
    with pytest.raises(ValueError, match="group size"):
        LocalRun(tmp_path / "g", [{"q": 1}], object(), {}, LocalSettings(algorithm="grpo", batch_size=6))
    with pytest.raises(ValueError, match="base model's GGUF"):
        LocalRun(tmp_path / "h", [{"q": 1}], object(), {}, LocalSettings(engine="llama.cpp"), model="some/hf-model")
    assert LocalRun(tmp_path / "a", [{"q": 1}], object(), {}, model="some/hf-model").engine == "transformers"
    assert LocalRun(tmp_path / "b", [{"q": 1}], object(), {}).engine == "llama.cpp"


def test_grpo_groups_that_all_scored_the_same_are_left_out_of_the_update(tmp_path) -> None:
    output = SimpleNamespace(prompt_ids=[1, 2], response_ids=[3, 4], response_mask=[1, 1])
    episodes = [(output, {"score": score, "group": group}) for score, group in ((1.0, 0), (0.0, 0), (0.5, 1),
                                                                               (0.5, 1), (0.0, 2), (0.5, 2))]
    dropping = LocalRun(tmp_path / "d", [{"q": 1}], object(), {},
                        LocalSettings(algorithm="grpo", group_size=2, batch_size=6, drop_uniform_groups=True))
    kept = dropping._trainable(episodes, None)
    assert [(r.group, r.reward) for r in kept] == [(0, 1.0), (0, 0.0), (2, 0.0), (2, 0.5)]
    everything = LocalRun(tmp_path / "e", [{"q": 1}], object(), {},
                          LocalSettings(algorithm="grpo", group_size=2, batch_size=6))
    assert [r.group for r in everything._trainable(episodes, None)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="drop_uniform_groups"):
        LocalRun(tmp_path / "p", [{"q": 1}], object(), {}, LocalSettings(drop_uniform_groups=True))


def test_plot_from_metrics(tmp_path, monkeypatch) -> None:
    from matplotlib.axes import Axes

    labels: list[str] = []
    monkeypatch.setattr(Axes, "set_xlabel", lambda self, label, *a, **k: labels.append(label))
    path = tmp_path / "metrics.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        for step in range(1, 7):
            writer.writerow({k: step if k == "step" else 0.1 * step for k in METRIC_COLUMNS})
    assert plot_metrics(path, tmp_path / "reward.png").stat().st_size > 10_000
    assert plot_metrics(path, tmp_path / "grpo.png", algorithm="grpo").stat().st_size > 10_000
    assert labels == ["PPO step"] * 2 + ["GRPO step"] * 2
    assert plot_metrics(tmp_path / "missing.csv", tmp_path / "none.png") is None
    # A run from before in_context / support_recall existed, and one whose reward needs no generator (acc NaN).
    older = [c for c in METRIC_COLUMNS if c not in ("in_context", "support_recall")]
    for name, columns, acc in (("old.csv", older, 0.5), ("context.csv", METRIC_COLUMNS, float("nan"))):
        with (tmp_path / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for step in range(1, 4):
                writer.writerow({k: step if k == "step" else acc if k in ("acc", "acc_rag") else 0.1 for k in columns})
        assert plot_metrics(tmp_path / name, tmp_path / f"{name}.png").stat().st_size > 10_000


def test_the_run_episodes_follow_its_budget_rule_and_first_prompt(tmp_path, policy_model, hashing_retriever,
                                                                  scripted_server) -> None:
    """``initial_k=5``: the first prompt shows naive top-5 while the context stays capped at 3, filled in rank order
    behind what the searcher kept."""
    import asyncio

    tokenizer = policy_model[1]
    run = LocalRun(tmp_path, [{"q": 1}], hashing_retriever, {},
                   LocalSettings(search="5-3-3", initial_k=5, fill_context=True, max_context_docs=3, constrained=False))
    loop = run.agent_loop(scripted_server(tokenizer, ["<important_info>[5]</important_info>\n"
                                                      "<search_complete>True</search_complete>"]), tokenizer)
    out = asyncio.run(loop.run({}, raw_prompt=[{"role": "user", "content": "Who founded the Hanseatic League?"}]))
    shown = [p.id for p in loop.last_state["blocks"][0]["passages"]]
    context = [d["id"] for d in out.extra_fields["s3_context"]]
    assert len(shown) == 5 and context == [shown[4], shown[0], shown[1]]


def test_query_spans_runs_every_rollout_turn_under_the_spans_read_so_far(tmp_path, policy_model, hashing_retriever,
                                                                        scripted_server) -> None:
    """``LocalSettings(query_spans=True)``: each turn the rollout server gets the grammar of the names shown before
    it, so RL samples queries only among them; without it, the plain action grammar."""
    import asyncio

    from s3_agents.protocol import action_grammar, candidate_spans

    tokenizer = policy_model[1]
    question = "Who founded the Hanseatic League?"
    turns = ["<important_info>[1]</important_info>\n<search_complete>False</search_complete>\n<query>Lübeck</query>",
             "<important_info>[]</important_info>\n<search_complete>True</search_complete>"]
    grammars: dict[bool, list[str | None]] = {}
    loops = {}
    for spans in (True, False):
        server = scripted_server(tokenizer, list(turns))
        run = LocalRun(tmp_path / str(spans), [{"q": 1}], hashing_retriever, {},
                       LocalSettings(search="5-3-3", query_spans=spans))
        loops[spans] = run.agent_loop(server, tokenizer)
        asyncio.run(loops[spans].run({}, raw_prompt=[{"role": "user", "content": question}]))
        grammars[spans] = [params.get("grammar") for params in server.sampling_params]
    read = [[(p.title or "", p.text) for p in block["passages"]] for block in loops[True].last_state["blocks"]]
    config = loops[True].search_config
    assert config.query_spans and not loops[False].search_config.query_spans
    assert grammars[True] == [action_grammar(config, spans=candidate_spans(question, read[0])),
                              action_grammar(config, spans=candidate_spans(question, read[0] + read[1]))]
    assert grammars[False] == [action_grammar(loops[False].search_config)] * 2
    assert grammars[True][0] != grammars[True][1]
    with pytest.raises(ValueError, match="needs constrained"):
        LocalSettings(query_spans=True, constrained=False)
