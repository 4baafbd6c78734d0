"""``report.html``: the traces behind it, the page's data, and the page itself in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from s3_agents import FaissRetriever, Generator, load_demo_corpus
from s3_agents.evaluation import NaiveRAG, S3Method, evaluate, write_report
from s3_agents.evaluation.html import html_report, row_record
from s3_agents.qa import load_demo_qa
from s3_agents.testing import ScriptedClient

HOSTILE = '</script><script>document.title="pwned"</script><b>bold?</b>'


def policy(messages) -> str:
    """Turn 1 breaks the protocol (hostile text), turn 2 searches, turn 3 selects and stops."""
    if len(messages) == 1:
        return HOSTILE
    if len(messages) == 3:
        return '<important_info>[1]</important_info><search_complete>False</search_complete>' \
               '<query>{"query": "Ketroul currency"}</query>'
    return "<important_info>[1, 2]</important_info><search_complete>True</search_complete>"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list]:
    from s3_agents import HashingEmbedder

    out = tmp_path_factory.mktemp("eval")
    retriever = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder(dim=256))
    generator = Generator(ScriptedClient(lambda messages: "Traeceith"))
    methods = [NaiveRAG(retriever, generator), S3Method(ScriptedClient(policy), retriever, generator)]
    rows = asyncio.run(evaluate(methods, {"demo": load_demo_qa()[:6]}, out / "results.jsonl", show_progress=False))
    write_report(rows, out)
    return out / "report.html", rows


def page_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))


def test_s3_trace_follows_the_episode(report) -> None:
    _, rows = report
    s3 = next(r for r in rows if r.method == "s3")
    steps = s3.extra["trace"]
    assert [s["type"] for s in steps] == ["retrieval", "generation", "generation", "retrieval", "generation"]
    assert steps[1]["output"] == HOSTILE and steps[1]["problem"]          # the invalid action, with its reason
    assert steps[2]["problem"] is None and steps[3]["query"] == "Ketroul currency"
    assert steps[0]["selected"] == [steps[0]["passages"][0]]             # [1] from the initial block
    assert steps[3]["selected"] == steps[3]["passages"][:2]               # [1, 2] from the search
    assert set(s3.context_ids) <= set(s3.extra["passages"])              # every shown passage has its text
    rag = next(r for r in rows if r.method == "naive-rag")
    assert [s["type"] for s in rag.extra["trace"]] == ["retrieval"] and rag.extra["trace"][0]["selected"] is None


def test_page_is_self_contained_and_keeps_hostile_text_as_data(report) -> None:
    path, rows = report
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)          # no CDN, no remote anything
    assert page.count("</script>") == 2 and HOSTILE not in page          # data cannot close its script element
    data = page_data(page)
    assert len(data["rows"]) == len(rows) and data["rows"][0]["scores"]
    assert HOSTILE in [s.get("output") for r in data["rows"] for s in r["trace"]]
    assert "data:image/png;base64," in page and "<table class='summary'>" in page
    assert html_report([row_record(rows[0])]).count("<img") == 0         # no plots given, none shown
    odd = html_report([row_record(rows[0])], title="{data} <i>", notes=["{script}"])
    assert "<title>{data} &lt;i&gt;</title>" in odd and "<p class='muted'>{script}</p>" in odd


def _chromium():
    """A headless Chromium through Debian's chromedriver (the README's install command installs both)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: "
                    "apt-get install -y chromium chromium-driver (the README's install command does)")
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_page_in_a_real_browser(report, tmp_path) -> None:
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path, rows = report
    wrong = sum(1 for r in rows if r.genacc < 1)
    browser = _chromium()
    try:
        browser.get(path.as_uri())
        count = browser.find_element(By.ID, "count")
        assert count.text == f"{len(rows)} of {len(rows)} shown"
        assert browser.title == "s3 evaluation"                            # the hostile output ran nothing

        Select(browser.find_element(By.ID, "f-outcome")).select_by_value("incorrect")
        assert count.text == f"{wrong} of {len(rows)} shown"
        Select(browser.find_element(By.ID, "f-outcome")).select_by_value("")
        Select(browser.find_element(By.ID, "f-method")).select_by_visible_text("s3")
        assert count.text == f"{len(rows) // 2} of {len(rows)} shown"
        shown = [e for e in browser.find_elements(By.CSS_SELECTOR, "details.episode") if e.is_displayed()]
        assert len(shown) == len(rows) // 2 and all("s3" in e.text for e in shown)
        browser.find_element(By.ID, "f-text").send_keys("Krubisk")
        assert count.text == f"1 of {len(rows)} shown"

        shown = [e for e in browser.find_elements(By.CSS_SELECTOR, "details.episode") if e.is_displayed()][0]
        shown.find_element(By.TAG_NAME, "summary").click()                  # the body is built when opened
        invalid = shown.find_element(By.CSS_SELECTOR, ".step.invalid")
        assert "invalid action" in invalid.text and HOSTILE in invalid.find_element(By.TAG_NAME, "pre").text
        assert not browser.find_elements(By.XPATH, "//b[text()='bold?']")  # shown as text, not markup
        assert len(shown.find_elements(By.CSS_SELECTOR, "li.passage.selected")) == 3

        panes = [browser.find_element(By.ID, i) for i in ("c-a", "c-b")]
        assert "naive-rag" in panes[0].text and "s3" in panes[1].text
        Select(browser.find_element(By.ID, "c-left")).select_by_visible_text("s3")
        left = panes[0].text
        assert "naive-rag" not in left, left
        assert "search: Ketroul currency" in left, left

        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    with Image.open(shot) as image:
        gray = image.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 20                        # not a blank page
        assert sum(gray.histogram()[:128]) > 5000                          # plenty of dark (text) pixels
