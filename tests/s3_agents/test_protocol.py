from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3_agents.protocol import Action, format_information, parse_action, parse_information, parse_selection
from s3_agents.types import Passage


@pytest.mark.parametrize(("text", "expected"), [
    ('<query>{"query": "who founded Gritia"}</query>', Action("search", query="who founded Gritia")),
    ("<query>raw text query</query>", Action("search", query="raw text query")),
    ('<query>{"query": ["first", "second"]}</query>', Action("search", query="first")),
    ('<query>{"q": "no query key"}</query>', Action("search", query='{"q": "no query key"}')),
    ("<query>  </query>", Action("invalid", problem="empty query")),
    ('<query>{"query": ""}</query>', Action("invalid", problem="empty query")),
    ("<search_complete>True</search_complete>", Action("complete")),
    ("<search_complete> yes </search_complete>", Action("complete")),
    ("<search_complete>False</search_complete>", Action("invalid", problem="no <query> and no true <search_complete>")),
    # A true search_complete wins over a query (the reference's priority).
    ("<search_complete>true</search_complete><query>x</query>", Action("complete")),
    ("<search_complete>False</search_complete>\n<query>next</query>", Action("search", query="next")),
    ("<important_info>[1, 4]</important_info><search_complete>1</search_complete>",
     Action("complete", selection="[1, 4]")),
    ("The answer is Paris.", Action("invalid", problem="no <query> and no true <search_complete>")),
    ("", Action("invalid", problem="no <query> and no true <search_complete>")),
    ("<query>unclosed", Action("invalid", problem="no <query> and no true <search_complete>")),
    ("<QUERY>case</QUERY>", Action("search", query="case")),
])
def test_parse_action(text: str, expected: Action) -> None:
    assert parse_action(text) == expected


def test_first_query_wins() -> None:
    assert parse_action("<query>a</query> then <query>b</query>").query == "a"


@pytest.mark.parametrize(("text", "n", "limit", "ids", "out", "over"), [
    ("[1, 4]", 8, 3, [1, 4], 0, 0),
    ("Doc 2 and Doc 3", 8, 3, [2, 3], 0, 0),
    ("[]", 8, 3, [], 0, 0),
    ("[9, 10, 2]", 8, 3, [2], 2, 0),     # the reference dropped 9+ silently even with 12 documents
    ("[10, 11, 12]", 12, 3, [10, 11, 12], 0, 0),
    ("[1, 2, 3, 4, 5]", 8, 3, [1, 2, 3], 0, 2),
    ("[0, 1, 1]", 3, 3, [1], 1, 0),
])
def test_parse_selection(text, n, limit, ids, out, over) -> None:
    picked = parse_selection(text, n, limit)
    assert (picked.ids, picked.out_of_range, picked.over_limit) == (ids, out, over)


def test_information_block_keeps_titles_intact() -> None:
    block = format_information([Passage("1", 'Foo (band)', "A band."), Passage("2", "Bar", "x")])
    assert block == '<information>\nDoc 1 (Title: "Foo (band)") A band.\nDoc 2 (Title: "Bar") x\n</information>'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=15).filter(lambda t: '"' not in t and "\n" not in t and "\r" not in t),
                          st.text(min_size=1, max_size=30).filter(lambda t: t.strip() == t and t and t.isprintable())),
                max_size=5))
def test_parse_information_reads_back_what_format_information_wrote(docs) -> None:
    passages = [Passage(str(i), title, text) for i, (title, text) in enumerate(docs)]
    block = "prompt line\n" + format_information(passages) + "\nDoc 9 is not a document line"
    assert parse_information(block) == [(i, title, text) for i, (title, text) in enumerate(docs, 1)]


# -- property-based: the parser never raises and its result is consistent with the text ----------

tags = st.sampled_from(["<query>", "</query>", "<search_complete>", "</search_complete>",
                        "<important_info>", "</important_info>", "<information>", "True", "False",
                        '{"query": ', "}", "[1, 2]", "\n"])
texts = st.lists(st.one_of(tags, st.text(max_size=20)), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_parser_never_raises_and_is_consistent(text: str) -> None:
    action = parse_action(text)
    assert action.kind in ("search", "complete", "invalid")
    if action.kind == "search":
        assert action.query and action.query == action.query.strip()
        assert "<query>" in text.lower() and "</query>" in text.lower()
    if action.kind == "complete":
        assert "</search_complete>" in text.lower()
    if action.kind == "invalid":
        assert action.problem


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=60).filter(lambda s: s.strip() == s and s and "</query>" not in s.lower()))
def test_json_query_round_trip(query: str) -> None:
    text = ("<important_info>[1]</important_info><search_complete>False</search_complete>"
            f"<query>{json.dumps({'query': query})}</query>")
    assert parse_action(text) == Action("search", query=query, selection="[1]")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=30), max_size=10), st.integers(1, 12), st.integers(1, 5))
def test_selection_is_bounded_unique_and_ordered(numbers, n_docs, limit) -> None:
    picked = parse_selection(str(numbers), n_docs, limit)
    assert len(picked.ids) <= limit and len(set(picked.ids)) == len(picked.ids)
    assert all(1 <= i <= n_docs for i in picked.ids)
    in_range = [abs(x) for x in numbers if 1 <= abs(x) <= n_docs]  # "-3" reads as 3: digits only
    assert picked.ids == list(dict.fromkeys(in_range))[:limit]
