"""Smoke runs of the benchmark scripts at tiny sizes, so they keep working. No speed is asserted here."""

from __future__ import annotations

import argparse
import json
import runpy
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture()
def run(capsys, monkeypatch) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``python benchmarks/SCRIPT --quick --no-write ARGS`` run in this process, as Python runs a script (its folder
    first on ``sys.path``): the libraries the suite has imported are not imported again for each script."""

    def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        path = REPO / "benchmarks" / script
        argv = [str(path), "--quick", "--no-write", *args]
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.syspath_prepend(str(path.parent))
        monkeypatch.chdir(REPO)
        for name, value in {"HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}.items():
            monkeypatch.setenv(name, value)
        code: int | str | None = 0
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code if isinstance(code, int) else 1, out, err)

    return run_script


def test_retrieval_benchmark_runs(run) -> None:
    result = run("retrieval.py")
    assert result.returncode == 0, result.stderr
    for heading in ("FAISS wrapper overhead", "Approximate indexes vs flat", "Qdrant local", "BM25 (bm25s)"):
        assert heading in result.stdout


def test_server_load_benchmark_runs_without_errors(run) -> None:
    result = run("server_load.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Errors in total: **0**" in result.stdout
    assert "Goal: p99 under load at most 5x p99 alone, for every hostile shape" in result.stdout
    assert "512 empty queries" in result.stdout


def test_rollouts_benchmark_runs(run) -> None:
    result = run("rollouts.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "sequential `search` loop" in result.stdout and "the graph itself" in result.stdout


def test_training_cpu_benchmark_runs(run, tiny_dir) -> None:
    result = run("training_cpu.py", "--model", str(tiny_dir))      # the script on trial, not SmolLM2's speed
    assert result.returncode == 0, result.stderr + result.stdout
    assert "agent loop / plain searcher" in result.stdout and "CpuPPO.step" in result.stdout


def test_constrained_benchmark_runs(run) -> None:
    result = run("constrained.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "| free |" in result.stdout and "| grammar | 0/" in result.stdout     # no invalid turn under the grammar


def test_embed_benchmark_runs(run) -> None:
    result = run("embed.py")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "s3 index build (flat, resumable, atomic)" in result.stdout and "Goal: build >= 0.9x raw" in result.stdout


def test_scale_benchmark_runs(run) -> None:
    result = run("scale.py")
    assert result.returncode == 0, result.stderr + result.stdout
    for words in ("| flat | `Flat` |", "| edge-hnsw |", "ivfpq-rflat", "A compressed index at recall@10 >= 0.9",
                  "Qdrant Edge HNSW vs FAISS HNSW"):
        assert words in result.stdout


def test_train_throughput_benchmark_runs(run, tmp_path) -> None:
    """One training configuration (GRPO on the llama.cpp engine, the one no other test runs end to end on SmolLM2)
    and the evaluation; transformers PPO on SmolLM2 runs in notebook 02, and the table's other rows below."""
    result = run("train_throughput.py", "--out", str(tmp_path), "--only", "llama.cpp-grpo,eval")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "| llama.cpp-grpo | llama.cpp |" in result.stdout and "s/question" in result.stdout


def test_train_throughput_reports_every_configuration_and_the_ratios(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import train_throughput

    step = {"seconds": 10.0, "rollout_seconds": 6.0, "reward_seconds": 1.0, "update_seconds": 3.0, "reward": 0.25,
            "generated_tokens": 120.0, "generated_tokens_per_s": 20.0}
    results = {name: {**step, "engine": config["engine"], "episodes_per_hour": 100.0 * (i + 1)}
               for i, (name, config) in enumerate(train_throughput.CONFIGS.items())}
    results["eval"] = {"transformers": {"seconds_per_question": 30.0}, "llama.cpp": {"seconds_per_question": 3.0},
                       "questions": 10}
    args = argparse.Namespace(only=None, steps=2, batch_size=8, slots=4)
    text = train_throughput._report(results, args)
    for name, config in train_throughput.CONFIGS.items():
        assert f"| {name} | {config['engine']} |" in text
    assert "Episodes per hour, llama.cpp / today: **2.00x**" in text
    assert "Episodes per hour, llama.cpp-slots / today: **3.00x**" in text
    assert "llama.cpp-slots / llama.cpp (the generator's parallel slots alone): **1.50x**" in text
    assert "transformers 30.0 s/question, llama.cpp 3.0 s/question: **0.10** of transformers' time" in text


def test_train_real_keeps_rows_without_passage_text_and_seeds_a_fresh_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import train_real

    row = {"method": "naive-rag", "id": "q1", "extra": {"trace": [{"passages": ["7"]}], "passages": {"7": ["T", "x"]}}}
    results = tmp_path / "run" / "eval-test" / "fill" / "results.jsonl"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(row) + '\n{"method": "s3", "id": "q1", "ext')      # a row still being written
    monkeypatch.setattr(train_real, "KEPT", tmp_path / "kept")
    kept = tmp_path / "kept" / "eval-test-fill.jsonl"
    assert train_real.keep_rows(results, kept) == 1
    assert json.loads(kept.read_text()) == {"method": "naive-rag", "id": "q1",
                                            "extra": {"trace": [{"passages": ["7"]}]}}
    fresh = argparse.Namespace(out=tmp_path / "fresh", quick=False)
    seeded = train_real._results(fresh, "eval-test/fill")
    assert seeded == tmp_path / "fresh" / "eval-test" / "fill" / "results.jsonl"
    assert seeded.read_text() == kept.read_text()
    assert not train_real._results(argparse.Namespace(out=tmp_path / "quick", quick=True), "eval-test/fill").exists()


def test_train_real_world_stage_adds_its_rules_beside_the_earlier_ones(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import train_real

    seen = {}

    def evaluate_split(args, world, split, limit, policies, url, rules, **kwargs):
        seen.update(split=split, policies=policies, rules=rules, dataset=kwargs["dataset"])
        return {rule: [rule] for rule in rules}

    monkeypatch.setattr(train_real, "evaluate_split", evaluate_split)
    monkeypatch.setattr(train_real, "index_stage", lambda args, world: None)
    monkeypatch.setattr(train_real, "summarize_rows", lambda rows, dataset: {"methods": {}, "paired": {}, "of": rows})
    monkeypatch.setattr(train_real, "DOCS", tmp_path)
    (tmp_path / "world-test.json").write_text(json.dumps({"fill": {"earlier": True}, "fill-spans": {"stale": True}}))
    shipped = REPO / "s3_agents" / "data" / "searchers" / "real"
    args = argparse.Namespace(world_rules="fill-spans", world_policies="trained", world_limit=3, no_write=False,
                              trained_adapter=shipped, warmstart_adapter=shipped)
    train_real.world_stage(args, "http://127.0.0.1:1")
    assert seen == {"split": "test", "policies": {"trained": shipped}, "rules": ("fill-spans",),
                    "dataset": "world-test"}
    assert json.loads((tmp_path / "world-test.json").read_text()) == {
        "fill": {"earlier": True}, "fill-spans": {"methods": {}, "paired": {}, "of": ["fill-spans"]}}
    with pytest.raises(SystemExit, match="--world-rules"):
        train_real.world_stage(argparse.Namespace(**{**vars(args), "world_rules": "fill,bogus"}), "http://x")


def test_train_real_warm_start_never_learns_from_the_test_split(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import train_real

    monkeypatch.setattr(sys, "argv", ["train_real.py", "--warmstart-splits", "train, dev"])
    assert train_real._args().warmstart_splits == ("train", "dev")
    monkeypatch.setattr(sys, "argv", ["train_real.py", "--warmstart-splits", "train,test"])
    with pytest.raises(SystemExit):
        train_real._args()


def test_query_headroom_counts_questions_with_a_single_best_span_target(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import query_headroom

    from s3_agents.types import Passage

    docs = {i: Passage(id=i, title=t, text=x) for i, t, x in [
        ("a", "Pramod Bhasin", "Pramod Bhasin founded Genpact with Jack Welch."), ("b", "Other", "Nothing here."),
        ("c", "Third", "Filler."), ("g", "Genpact", "Genpact is in Gurgaon."), ("w", "Jack Welch", "Jack Welch.")]}
    hits = {"Genpact": "gwbca", "Jack Welch": "wgbca", "Nothing": "bcawg"}    # each span's ranking, by id

    class Dense:
        def search(self, queries, k):
            return [[docs[i] for i in hits.get(q, "abcgw")[:k]] for q in queries]

    def question(chain_ids, text="Who founded the company Pramod Bhasin led?"):
        return {"question": text, "chain": [{"passage_id": i} for i in chain_ids]}

    counts = query_headroom.target_ties(
        [question("ag"),                        # Genpact ranks the missing passage first, Jack Welch second: one best
         question("ab"),                        # nothing missing from the initial top 3: no search needed
         question("aw")],                       # Jack Welch first; Genpact second
        Dense(), k=5)
    assert counts == {"need a search": 2, "some read name retrieves a missing passage": 2, "a single best name": 2}
    hits["Jack Welch"] = "gwbca"                # now both names rank it first: a tie
    assert query_headroom.target_ties([question("ag")], Dense(), k=5)["a single best name"] == 0
    assert query_headroom.target_ties([question("ag")], Dense(), k=1)["some read name retrieves a missing passage"] == 1
    hits.update({"Genpact": "bcagw", "Jack Welch": "bcagw"})
    assert query_headroom.target_ties([question("ag")], Dense(), k=3)["some read name retrieves a missing passage"] == 0
