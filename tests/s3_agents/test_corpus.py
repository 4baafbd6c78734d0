from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from s3_agents.corpus import corpus_fingerprint, load_corpus, parse_passage, write_corpus
from s3_agents.errors import CorpusFormatError, DataFileError
from s3_agents.types import Passage


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_wiki18_form(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"id": "0", "contents": '"Hamlet"\nA tragedy by William Shakespeare.'}),
        json.dumps({"id": 7, "contents": '"Foo (band)"\nA band.\nSecond line.'}),
    ])
    corpus = load_corpus(path)
    assert [p.id for p in corpus] == ["0", "7"]
    assert corpus.passages[0] == Passage("0", "Hamlet", "A tragedy by William Shakespeare.")
    # Titles with parentheses survive (the s3 regex mangled them).
    assert corpus.passages[1].title == "Foo (band)"
    assert corpus.passages[1].text == "A band.\nSecond line."
    assert corpus.passages[1].contents == '"Foo (band)"\nA band.\nSecond line.'


def test_reads_plain_form_and_gzip(tmp_path: Path) -> None:
    lines = [json.dumps({"id": "a", "title": "T", "text": "body"}), "", json.dumps({"id": "b", "text": "no title"})]
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    corpus = load_corpus(path)
    assert [(p.id, p.title, p.text) for p in corpus] == [("a", "T", "body"), ("b", "", "no title")]


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "invalid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"contents": "x"}', '"id"'),
    ('{"id": "1"}', '"contents"'),
    ('{"id": "1", "contents": 5}', "must be a string"),
    ('{"id": "1", "title": "", "text": ""}', "empty"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "0", "contents": '"T"\nok'}), "", line])
    with pytest.raises(CorpusFormatError) as info:
        load_corpus(path)
    assert info.value.line_no == 3
    assert info.value.path == str(path)
    assert reason in str(info.value)
    assert f"{path}, line 3" in str(info.value)


def test_skip_bad_lines_counts_them(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"id": "0", "contents": '"T"\nok'}),
        "garbage",
        json.dumps({"id": "0", "contents": '"T"\nduplicate id'}),
        json.dumps({"id": "1", "contents": '"U"\nfine'}),
    ])
    corpus = load_corpus(path, skip_bad_lines=True)
    assert [p.id for p in corpus] == ["0", "1"]
    assert [b.line_no for b in corpus.bad_lines] == [2, 3]
    assert "duplicate id '0' (first seen on line 1)" in corpus.bad_lines[1].reason
    assert "skipped 2 bad line(s), first at line 2" in corpus.summary()


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        load_corpus("/nonexistent/corpus.jsonl")


def test_parse_passage_without_title_line() -> None:
    assert parse_passage({"id": 3, "contents": "just text"}) == Passage("3", "", "just text")


@pytest.mark.parametrize("form", ["wiki18", "plain"])
def test_write_then_read_round_trip(tmp_path: Path, demo_corpus, form: str) -> None:
    path = tmp_path / f"{form}.jsonl"
    assert write_corpus(demo_corpus.passages, path, form=form) == len(demo_corpus)
    again = load_corpus(path)
    assert again.passages == demo_corpus.passages
    assert corpus_fingerprint(again) == corpus_fingerprint(demo_corpus)


def test_fingerprint_changes_with_text(demo_corpus) -> None:
    changed = list(demo_corpus.passages)
    changed[5] = Passage(changed[5].id, changed[5].title, changed[5].text + ".")
    assert corpus_fingerprint(changed) != corpus_fingerprint(demo_corpus)


# -- files that are not what they say: every error names the file and the line -------------------------
GOOD = b'{"id": "1", "contents": "\\"A\\"\\nalpha"}\n'


def test_invalid_utf8_names_the_line_and_can_be_skipped(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    latin1 = '{"id": "2", "contents": "\\"B\\"\\ncaf\u00e9"}\n'.encode("latin-1")
    path.write_bytes(GOOD + latin1 + GOOD.replace(b'"1"', b'"3"'))
    with pytest.raises(CorpusFormatError, match=rf"{path}, line 2: not UTF-8: byte 0xe9 at column \d+"):
        load_corpus(path)
    corpus = load_corpus(path, skip_bad_lines=True)
    assert [p.id for p in corpus] == ["1", "3"] and [b.line_no for b in corpus.bad_lines] == [2]


def test_binary_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CorpusFormatError, match=rf"{path}, line \d+: "):
        load_corpus(path)


def test_truncated_and_mislabelled_gzip(tmp_path: Path) -> None:
    from s3_agents.errors import DataFileError

    whole = gzip.compress(b"".join(GOOD.replace(b'"1"', f'"{i}"'.encode()) for i in range(200)))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DataFileError, match=rf"{cut}, line \d+: the gzip stream ends early"):
        load_corpus(cut)
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_bytes(GOOD)
    with pytest.raises(DataFileError, match=rf"{plain}, line 1: not a gzip file"):
        load_corpus(plain, skip_bad_lines=True)


def test_corpus_check_fails_on_an_empty_corpus(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from s3_agents.cli import app

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = CliRunner().invoke(app, ["corpus", "check", str(empty)])
    assert result.exit_code == 1 and f"no passages in {empty}" in result.output


def test_qa_files_name_the_file_and_line(tmp_path: Path) -> None:
    from s3_agents.qa import load_qa

    path = tmp_path / "qa.jsonl"
    latin1 = '{"question": "caf\u00e9?", "answers": ["b"]}\n'.encode("latin-1")
    path.write_bytes(b'{"question": "q?", "answers": ["a"]}\n' + latin1)
    with pytest.raises(DataFileError, match=rf"{path}, line 2: not UTF-8: byte 0xe9"):
        load_qa(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match=rf"{empty}: no questions"):
        load_qa(empty)
