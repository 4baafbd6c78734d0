from __future__ import annotations

import pytest

from s3_agents.metrics import exact_match, f1_score, gen_acc, judge_says_yes, normalize_answer, span_match
from s3_agents.reward import gain_beyond_rag
from s3_agents.testing import ScriptedClient


def test_normalize() -> None:
    assert normalize_answer("  The  Eiffel-Tower!! ") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"


def test_exact_match_and_f1() -> None:
    assert exact_match("the Nomian River.", ["Nomian River"]) == 1.0
    assert exact_match("Nomian", ["Nomian River"]) == 0.0
    assert f1_score("Nomian", ["Nomian River"]) == pytest.approx(2 / 3)
    assert f1_score("nothing here", ["Nomian River", "x"]) == 0.0
    assert f1_score("river Nomian", ["Nomian River"]) == 1.0


def test_span_match_is_token_aligned() -> None:
    assert span_match("It flows into the Quiet Gulf, I think.", ["Quiet Gulf"]) == 1.0
    assert span_match("The currency is the mobroun.", ["mobroun"]) == 1.0
    assert span_match("mobrouns everywhere", ["mobroun"]) == 0.0          # not a substring test
    assert span_match("1757", ["1757"]) == 1.0 and span_match("17571", ["1757"]) == 0.0
    assert span_match("anything", [""]) == 0.0


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Yes", True), ("yes, it is contained", True), ("No.", False), ("no", False),
    ("Not sure, yes maybe", None), ("", None), ("Yesterday", None),
])
def test_judge_reply_is_read_strictly(reply, verdict) -> None:
    # The reference took "yes" anywhere in the reply; here only the first word counts.
    assert judge_says_yes(reply) is verdict


def test_gen_acc_span_then_judge() -> None:
    assert gen_acc("The answer is drilu.", ["drilu"]) == 1.0
    judge = ScriptedClient(["yes"])
    assert gen_acc("It is the Drilu currency note", ["drilu coin"], judge) == 1.0
    assert len(judge.calls) == 1 and "drilu coin" in judge.calls[0][0]["content"]
    assert gen_acc("mimol", ["drilu"], ScriptedClient(["No"])) == 0.0
    unsure = ScriptedClient(["maybe", "perhaps"])
    assert gen_acc("mimol", ["drilu"], unsure, retries=1) == 0.0 and len(unsure.calls) == 2
    assert gen_acc("", ["drilu"], ScriptedClient([])) == 0.0                # empty answers are not judged


def test_gain_beyond_rag_variants() -> None:
    assert gain_beyond_rag(1, 1) == 0 and gain_beyond_rag(0, 0) == 0
    assert gain_beyond_rag(1, 0) == 1 and gain_beyond_rag(0, 1) == -1
    # The reference code's reward: utility + generation score = 2*acc - acc_rag.
    assert [gain_beyond_rag(a, r, "gbr+acc") for a, r in [(1, 0), (1, 1), (0, 0), (0, 1)]] == [2, 1, 0, -1]
    assert gain_beyond_rag(1, 1, "acc") == 1
    with pytest.raises(ValueError, match="variant"):
        gain_beyond_rag(1, 0, "em")  # type: ignore[arg-type]
