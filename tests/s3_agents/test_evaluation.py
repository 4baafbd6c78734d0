"""Evaluation: datasets, metrics, methods (scripted and against a real llama.cpp server), resume, report, CLI."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import typer

from s3_agents import BM25Retriever, FaissRetriever, Generator, HashingEmbedder, OpenAICompatClient, load_demo_corpus
from s3_agents.cli.eval import open_bm25
from s3_agents.evaluation import (
    IRCoT,
    NaiveRAG,
    NoRetrieval,
    QueryRewrite,
    SearchR1Style,
    build_methods,
    evaluate,
    summarize,
    write_report,
)
from s3_agents.evaluation.report import cost_table, markdown_table
from s3_agents.evaluation.runner import VOLATILE, EvalRow, ResultsFile
from s3_agents.metrics import answer_in_context
from s3_agents.qa import QAExample, load_demo_qa, load_qa
from s3_agents.retrievers import RemoteRetriever, build_index
from s3_agents.testing import ScriptedClient, on_event_loop
from s3_agents.types import Passage
from tests.conftest import free_port


@pytest.fixture(scope="module")
def retriever() -> FaissRetriever:
    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())


def run(coro):
    return asyncio.run(coro)


# -- datasets ------------------------------------------------------------------------------------
def test_flashrag_and_plain_forms(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"id": "test_7", "question": "who wrote x", "golden_answers": ["A", "B"],
                                "metadata": {"type": "bridge"}}) + "\n"
                    + json.dumps({"question": "Capital of Y?", "answers": "Z", "hops": 2}) + "\n")
    first, second = load_qa(path)
    assert (first.id, first.answers, first.metadata) == ("test_7", ("A", "B"), {"type": "bridge"})
    assert (second.id, second.answers, second.metadata) == ("line-2", ("Z",), {"hops": 2})


def test_bad_lines_are_listed_by_number(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "ok?", "answers": ["a"]}\n{oops\n[1, 2]\n{"question": "", "answers": ["a"]}\n'
                    '{"question": "q", "golden_answers": []}\n')
    with pytest.raises(ValueError) as err:
        load_qa(path)
    for line in (2, 3, 4, 5):
        assert f"line {line}:" in str(err.value)
    assert "line 1:" not in str(err.value)


def test_demo_set_ships_with_the_package():
    examples = load_demo_qa()
    assert len(examples) > 100 and all(e.answers and e.id for e in examples)
    assert len({e.id for e in examples}) == len(examples)


# -- metrics -------------------------------------------------------------------------------------
def test_answer_in_context_hand_checked():
    passages = [Passage("1", "Ketroul", "The national currency of Ketroul is the mobroun."),
                Passage("2", "The Mobroun Affair", "A novel.")]
    assert answer_in_context(passages, ["mobroun"]) == 1.0
    assert answer_in_context(passages[1:], ["The mobroun affair"]) == 1.0     # title counts, articles ignored
    assert answer_in_context(passages, ["stiabrein"]) == 0.0
    assert answer_in_context([], ["mobroun"]) == 0.0
    assert answer_in_context([Passage("3", "t", "the mobrounia league")], ["mobroun"]) == 0.0  # whole tokens only


def _row(method, dataset, qid, genacc, searches=0, tokens=10):
    return EvalRow(method=method, dataset=dataset, id=qid, question="q", answers=["a"], answer="a", genacc=genacc,
                   em=0.0, f1=genacc, context_recall=0.0, context_ids=[], searches=searches, turns=searches,
                   prompt_tokens=tokens, completion_tokens=0, seconds=1.0, extra={})


def test_summary_reports_context_size_valid_actions_and_intervals():
    from dataclasses import replace

    from s3_agents.evaluation.report import bootstrap_ci

    rows = [replace(_row("s3", "nq", str(i), float(i % 2), searches=2), context_ids=["a", "b", "c"],
                    context_recall=1.0 if i < 3 else 0.0, extra={"invalid": i % 2}) for i in range(10)]
    rows.append(replace(_row("naive-rag", "nq", "1", 1.0), context_ids=["a", "b", "c"]))
    summary = summarize(rows)
    s3 = summary["s3"]["nq"]
    assert s3["context_docs"] == 3.0 and s3["context_recall"] == 30.0
    assert s3["valid_action_rate"] == 75.0                    # 5 invalid of 20 turns
    low, high = s3["genacc_ci"]
    assert low < s3["genacc"] < high and 0.0 <= low and high <= 100.0
    assert s3["genacc_ci"] == bootstrap_ci([r.genacc for r in rows if r.method == "s3"])   # seeded: repeatable
    assert "valid_action_rate" not in summary["naive-rag"]["nq"]
    assert bootstrap_ci([1.0, 1.0]) == (100.0, 100.0) and bootstrap_ci([]) == (0.0, 0.0)
    assert "| s3 | 50.0 | 30.0 | 3.0 | 2.00 | 2.00 | 75.0% |" in cost_table(summary)


def test_paired_difference_pairs_questions_and_leaves_out_unmeasured_fields():
    from dataclasses import replace

    from s3_agents.evaluation.report import bootstrap_ci, paired_difference

    rows = [replace(_row("s3", "hotpot", str(i), 1.0), support_recall=1.0) for i in range(4)]
    rows += [replace(_row("naive-rag", "hotpot", str(i), float(i < 2)), support_recall=0.5) for i in range(4)]
    rows += [_row("s3", "nq", "9", 1.0)]                               # no naive-RAG row: not paired
    out = paired_difference(rows, "s3", "naive-rag")
    assert out["n"] == 4 and out["genacc"] == 50.0 and out["genacc_ci"] == list(bootstrap_ci([0, 0, 1, 1]))
    assert out["answer_in_context"] == 0.0 and out["support_recall"] == 50.0
    bare = paired_difference([_row("s3", "nq", "1", 1.0), _row("naive-rag", "nq", "1", 0.0)], "s3", "naive-rag")
    assert "support_recall" not in bare and bare["genacc"] == 100.0      # no supporting ids in nq


def test_summary_weighs_datasets_equally_and_lists_s3_last():
    rows = [_row("s3", "nq", "1", 1.0, 2), _row("s3", "nq", "2", 0.0, 4), _row("s3", "hotpot", "1", 1.0, 3),
            _row("naive-rag", "nq", "1", 0.0, 1), _row("naive-rag", "hotpot", "1", 1.0, 1),
            _row("my-method", "nq", "1", 1.0)]
    summary = summarize(rows)
    assert list(summary) == ["naive-rag", "s3", "my-method"]             # METHOD_NAMES order, unknown names last
    assert summary["s3"]["nq"]["genacc"] == 50.0 and summary["s3"]["hotpot"]["genacc"] == 100.0
    assert summary["s3"]["avg"]["genacc"] == 75.0                          # not 66.7: each dataset weighs the same
    assert summary["s3"]["nq"]["searches"] == 3.0 and summary["s3"]["avg"]["n"] == 1.5
    table = markdown_table(summary).splitlines()
    assert table[0] == "| method | hotpot | nq | Avg |"
    assert table[3] == "| s3 | 100.0 (0.0) | 50.0 (0.0) | 75.0 (0.0) |"
    assert table[4] == "| my-method | – | 100.0 (0.0) | 100.0 (0.0) |"


# -- methods with scripted LLMs (exact behaviour) ------------------------------------------------
def test_ircot_uses_each_sentence_as_the_next_query(retriever):
    reasoner = ScriptedClient(["Kaemia Tritrir invented the Pubrel engine.",
                               "Kaemia Tritrir was born in Traeceith.", "So the answer is Traeceith."])
    method = IRCoT(reasoner, retriever, Generator(ScriptedClient(lambda m: "Traeceith")), k=2, max_steps=4)
    result = run(method.arun("Where was the inventor of the Pubrel engine born?"))
    assert result.searches == 3 and result.turns == 3
    assert result.extra["queries"][1:] == ["Kaemia Tritrir invented the Pubrel engine.",
                                           "Kaemia Tritrir was born in Traeceith."]
    assert len(result.context) == len({p.id for p in result.context}) <= 6


def test_search_r1_protocol_and_self_answer(retriever):
    script = ["<think>need the founder</think><search> Gritia founded </search>",
              "<think>found it</think><answer> Kaemia Tritrir </answer>"]
    generator = Generator(ScriptedClient(lambda m: "generator says"))
    ret = run(SearchR1Style(ScriptedClient(list(script)), retriever, generator, k=3).arun("Who founded Gritia?"))
    own = run(SearchR1Style(ScriptedClient(list(script)), retriever, generator, k=3, self_answer=True)
              .arun("Who founded Gritia?"))
    assert ret.answer == "generator says" and own.answer == "Kaemia Tritrir"
    assert ret.searches == own.searches == 1 and len(ret.context) == 3
    assert ret.extra["queries"] == ["Gritia founded"]


def test_query_rewrite_parses_the_query_and_falls_back(retriever):
    generator = Generator(ScriptedClient(lambda m: "x"))
    rewritten = run(QueryRewrite(ScriptedClient(["<query>Ketroul currency</query>"]), retriever, generator)
                    .arun("What money do they use in Ketroul?"))
    assert rewritten.extra["queries"] == ["Ketroul currency"] and len(rewritten.context) == 3
    empty = run(QueryRewrite(ScriptedClient([""]), retriever, generator).arun("What is Gritia?"))
    assert empty.extra["queries"] == ["What is Gritia?"]


def test_bm25_twins_search_the_bm25_index(retriever):
    bm25 = BM25Retriever.from_passages(load_demo_corpus().passages)
    rewriter = ScriptedClient(lambda m: "<query>Ketroul currency</query>")
    methods = build_methods(["naive-rag", "naive-rag-bm25", "query-rewrite-bm25", "naive-rag"], policy=rewriter,
                            retriever=retriever, generator=Generator(ScriptedClient(lambda m: "x")), config=None,
                            k=2, max_turns=2, bm25=lambda: bm25)
    assert [m.name for m in methods] == ["naive-rag", "naive-rag-bm25", "query-rewrite-bm25"]
    assert methods[0].retriever is retriever and methods[1].retriever is methods[2].retriever is bm25
    question = "What money do they use in Ketroul?"
    sparse = run(methods[1].arun(question))
    assert [p.id for p in sparse.context] == [p.id for p in bm25.search([question], 2)[0]]
    run(methods[2].arun(question))
    assert "BM25" in rewriter.calls[-1][0]["content"]           # the rewriter is told the engine matches keywords
    run(QueryRewrite(rewriter, retriever, Generator(ScriptedClient(lambda m: "x"))).arun(question))
    assert "BM25" not in rewriter.calls[-1][0]["content"]


def test_bm25_index_is_found_or_asked_for(tmp_path, retriever):
    build_index(load_demo_corpus().passages[:20], tmp_path / "bm25", backend="bm25", show_progress=False)
    build_index(load_demo_corpus().passages[:20], tmp_path / "dense", embedder=HashingEmbedder(),
                show_progress=False)
    given = open_bm25(str(tmp_path / "bm25"), retriever, demo=False)
    assert isinstance(given, BM25Retriever) and len(given) == 20
    assert open_bm25(None, given, demo=False) is given                     # the main index is BM25 already
    assert len(open_bm25(None, retriever, demo=True)) == len(load_demo_corpus())
    with pytest.raises(typer.BadParameter, match="not BM25"):
        open_bm25(str(tmp_path / "dense"), retriever, demo=False)
    server = open_bm25("http://127.0.0.1:3000", retriever, demo=False)     # a retrieval server over BM25
    assert isinstance(server, RemoteRetriever) and server.url.startswith("http://127.0.0.1:3000")
    rewriter = ScriptedClient(lambda m: "<query>q</query>")
    method = build_methods(["query-rewrite-bm25"], policy=rewriter, retriever=retriever, generator=None, config=None,
                           k=3, max_turns=4, bm25=lambda: server)[0]
    assert method.retriever is server and method.bm25                     # the prompt's BM25 hint, remote too
    with pytest.raises(typer.BadParameter, match="--backend bm25"):
        open_bm25(None, retriever, demo=False)
    with pytest.raises(ValueError, match="need a BM25 retriever"):
        build_methods(["naive-rag-bm25"], policy=None, retriever=retriever, generator=None, config=None, k=3,
                      max_turns=4)
    with pytest.raises(ValueError, match="unknown method.*rag-e5; choose from no-retrieval"):
        build_methods(["rag-e5"], policy=None, retriever=retriever, generator=None, config=None)


# -- resume --------------------------------------------------------------------------------------
class Flaky:
    """Wraps a method and fails on its n-th call, like a run stopped half-way."""

    def __init__(self, inner, fail_at: int) -> None:
        self.inner, self.name, self.fail_at, self.calls = inner, inner.name, fail_at, 0

    async def arun(self, question):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return await self.inner.arun(question)


def stable(path):
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in path.read_text().splitlines()]


def check_resume(tmp_path, make_methods, datasets, **kwargs):
    whole = tmp_path / "whole" / "results.jsonl"
    rows = run(evaluate(make_methods(), datasets, whole, show_progress=False, **kwargs))
    broken = tmp_path / "broken" / "results.jsonl"
    first = make_methods()
    first[0] = Flaky(first[0], fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(evaluate(first, datasets, broken, show_progress=False, concurrency=1, **kwargs))
    done = len(broken.read_text().splitlines())
    assert 0 < done < len(rows)
    with broken.open("a") as handle:
        handle.write('{"method": "naive-rag", "data')               # a line cut by the interruption
    again = run(evaluate(make_methods(), datasets, broken, show_progress=False, **kwargs))
    assert stable(broken) == stable(whole) and len(again) == len(rows)


def test_resume_gives_the_same_results_file_scripted(tmp_path, retriever):
    def make():
        generator = Generator(ScriptedClient(lambda m: m[-1]["content"][:12]))
        return [NaiveRAG(retriever, generator), NoRetrieval(generator)]

    check_resume(tmp_path, make, {"demo": load_demo_qa()[:5]})


def test_support_recall_where_the_data_names_supporting_passages(tmp_path, retriever):
    """Rows score support recall when the question's metadata has supporting_ids; rows written before it read."""
    from s3_agents.metrics import support_recall

    generator = Generator(ScriptedClient(lambda m: "x"))
    questions = load_demo_qa()[:4]
    top = {q.question: retriever.search([q.question], 3)[0] for q in questions}
    gold = {q.id: [top[q.question][0].id, "no-such-passage"] if i % 2 else ["no-such-passage"]
            for i, q in enumerate(questions)}
    real = [QAExample(q.question, q.answers, q.id, metadata={"supporting_ids": gold[q.id]}) for q in questions]
    plain = [QAExample(q.question, q.answers, q.id) for q in questions[:2]]          # no supporting ids
    rows = run(evaluate([NaiveRAG(retriever, generator)], {"real": real, "plain": plain},
                        tmp_path / "results.jsonl", show_progress=False))
    by = {(r.dataset, r.id): r for r in rows}
    for i, q in enumerate(questions):
        assert by["real", q.id].support_recall == support_recall(top[q.question], gold[q.id]) == 0.5 * (i % 2)
    assert by["plain", questions[0].id].support_recall is None
    summary = summarize(rows)["naive-rag"]
    assert summary["real"]["support_recall"] == 25.0 and "support_recall_ci" in summary["real"]
    assert "support_recall" not in summary["plain"]
    old = tmp_path / "old.jsonl"                        # a results file from before the field existed
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    old.write_text("\n".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "support_recall"})
                             for line in lines) + "\n")
    assert len(ResultsFile(old).rows) == len(lines) and not old.with_name("old.jsonl.rejected").exists()


def test_duplicate_method_names_are_refused(tmp_path, retriever):
    generator = Generator(ScriptedClient(lambda m: "x"))
    with pytest.raises(ValueError, match="unique"):
        run(evaluate([NoRetrieval(generator), NoRetrieval(generator)], {"d": load_demo_qa()[:1]},
                     tmp_path / "r.jsonl", show_progress=False))


def test_duplicate_ids_in_a_dataset_are_refused(tmp_path, retriever):
    generator = Generator(ScriptedClient(lambda m: "x"))
    twice = [QAExample("a?", ("x",), id="1"), QAExample("b?", ("y",), id="1")]
    with pytest.raises(ValueError, match="duplicate id"):
        run(evaluate([NoRetrieval(generator)], {"d": twice}, tmp_path / "r.jsonl", show_progress=False))


# -- real server ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_method_end_to_end_against_llama_cpp(llama_server, retriever, tmp_path):
    """The methods notebook 03 does not run through `s3 eval` (it runs no-retrieval, both naive RAGs, s3 and IRCoT),
    beside the two cheap rows whose shape is fixed (no retrieval, naive RAG), on one question against llama.cpp."""
    llm = OpenAICompatClient(llama_server.url, llama_server.model)
    generator = Generator(llm)
    bm25 = BM25Retriever.from_passages(load_demo_corpus().passages)
    methods = [NoRetrieval(generator), NaiveRAG(retriever, generator), QueryRewrite(llm, retriever, generator),
               QueryRewrite(llm, bm25, generator, name="query-rewrite-bm25"),
               SearchR1Style(llm, retriever, generator, max_turns=2),
               SearchR1Style(llm, retriever, generator, max_turns=2, self_answer=True)]
    rows = run(evaluate(methods, {"demo": load_demo_qa()[:1]}, tmp_path / "results.jsonl", judge=llm,
                        concurrency=2, show_progress=False))
    assert len(rows) == 6 and {r.method for r in rows} == {m.name for m in methods}
    ids = {p.id for p in load_demo_corpus().passages}
    for row in rows:
        assert row.genacc in (0.0, 1.0) and 0.0 <= row.f1 <= 1.0 and set(row.context_ids) <= ids
        assert row.prompt_tokens > 0 and row.completion_tokens > 0, row.method      # every method calls an LLM
        if row.method == "no-retrieval":
            assert row.context_ids == [] and row.searches == 0
        if row.method == "naive-rag":
            assert len(row.context_ids) == 3 and row.searches == 1
        if row.method.startswith("query-rewrite"):
            assert row.searches == 1 and len(row.context_ids) == 3
        if row.method in ("search-r1", "search-r1-self"):
            assert row.searches <= 2
    report = write_report(rows, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| method | demo | Avg |" in text and "search-r1-self" in text
    assert all(path.stat().st_size > 0 for path in report["files"])


@pytest.mark.slow
def test_s3_eval_cli_prints_the_table_and_writes_the_report(s3, llama_server, tmp_path):
    args = ["eval", "--methods", "naive-rag,naive-rag-bm25", "--dataset", "demo", "--limit", "1", "--out",
            str(tmp_path / "eval"), "--judge-url", llama_server.url, "--judge-model", llama_server.model,
            "--policy-url", llama_server.url, "--policy-model", llama_server.model]
    code, out, err = s3(*args)
    assert code == 0, err
    assert "| method | demo | Avg |" in out and "| naive-rag |" in out and "| naive-rag-bm25 |" in out
    for name in ("results.jsonl", "report.md", "summary.json", "accuracy.png", "cost.png"):
        assert (tmp_path / "eval" / name).is_file()
    assert len((tmp_path / "eval" / "results.jsonl").read_text().splitlines()) == 2
    assert f"judge: {llama_server.model}" in (tmp_path / "eval" / "report.md").read_text()
    code, again, _ = s3(*args)                       # everything is done: nothing recomputed, same table
    assert code == 0 and again.splitlines()[:4] == out.splitlines()[:4]


def test_s3_eval_names_a_judge_that_is_down(s3, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    code, _, err = s3("eval", "--methods", "naive-rag", "--judge-url", dead, "--judge-model", "judge", "--limit", "1",
                      "--out", str(tmp_path / "eval"))
    assert code == 1 and dead in err and "Traceback" not in err
    assert not (tmp_path / "eval" / "results.jsonl").exists()
    code, _, err = s3("eval", "--judge-model", "judge", "--out", str(tmp_path / "eval"))
    assert code == 2 and "--judge-url" in err


# -- a results file that was damaged, or is shared ----------------------------------------------------
def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _scripted_run(path, retriever, n=3):
    generator = Generator(ScriptedClient(lambda m: "Kaemia Tritrir"))
    return run(evaluate([NaiveRAG(retriever, generator)], {"demo": load_demo_qa()[:n]}, path, show_progress=False))


def test_a_line_cut_inside_a_multibyte_character_is_dropped_and_redone(tmp_path, retriever):
    path = tmp_path / "results.jsonl"
    rows = _scripted_run(path, retriever)
    line = json.dumps({**_rows(path)[0], "answer": "Ørsted é"}, ensure_ascii=False).encode()
    cut = line[:line.index("Ø".encode()) + 1]                          # inside the two bytes of "Ø"
    keep = path.read_bytes().split(b"\n")[1:]
    path.write_bytes(b"\n".join(keep) + cut)
    again = _scripted_run(path, retriever)                           # resumes: no UnicodeDecodeError
    assert [r.key for r in again] == [r.key for r in rows]
    assert not (tmp_path / "results.jsonl.rejected").exists()


def test_unreadable_lines_are_set_aside_with_a_warning_and_parsed_rows_kept(tmp_path, retriever):
    path = tmp_path / "results.jsonl"
    rows = _scripted_run(path, retriever, n=5)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = "garbage, not json"
    newer = json.loads(lines[3]) | {"from_a_newer_version": 1}           # a row with an extra key: kept
    lines[3] = json.dumps(newer)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.warns(RuntimeWarning, match=r"line\(s\) 2 are not result rows"):
        again = _scripted_run(path, retriever, n=5)
    assert len(again) == len(rows) == 5
    assert (tmp_path / "results.jsonl.rejected").read_text() == "garbage, not json\n"
    kept = {(r["method"], r["dataset"], r["id"]): r for r in _rows(path)}
    assert kept[tuple(newer[k] for k in ("method", "dataset", "id"))]["extra"]["from_a_newer_version"] == 1


def test_a_second_run_on_the_same_results_file_is_refused(tmp_path, retriever):
    path = tmp_path / "results.jsonl"
    first = ResultsFile(path)
    with pytest.raises(RuntimeError, match=rf"another run is writing .*results.jsonl \(pid {os.getpid()}\)"):
        _scripted_run(path, retriever)
    first.finalize()
    assert len(_scripted_run(path, retriever)) == 3                      # the lock goes with the first run


def test_rows_are_fsynced_off_the_event_loop(tmp_path, retriever, monkeypatch):
    """Each row's fsync (and the open and final rewrite) runs in a worker thread, never on the event loop."""
    on_loop: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd):
        on_loop.append(on_event_loop())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    (tmp_path / "results.jsonl").write_text("")
    rows = _scripted_run(tmp_path / "results.jsonl", retriever, n=4)
    assert len(rows) == 4 and len(on_loop) >= 4 and not any(on_loop)
