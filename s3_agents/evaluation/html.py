"""``report.html``: one self-contained page to read the trajectories behind the numbers.

It holds the table and the plots (as data URIs), then every answer: per question and method, each step of the
trace (queries, retrieved passages with the selected ones marked, model outputs with invalid actions flagged),
the generator's context and answer, the gold answers and the scores. Filters by method, dataset and
correct / incorrect, a text filter on the question, and a side-by-side view of two methods on one question.
No network: no CDN, no fonts, no requests; the data sits in the page as JSON and the script renders it with
``textContent`` only (model output is never parsed as HTML).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s3_agents.evaluation.runner import EvalRow
from s3_agents.evaluation.trace import s3_trace
from s3_agents.locks import write_atomic

__all__ = ["html_report", "write_html_report", "row_record", "episode_record"]

_SCORES = ("genacc", "em", "f1", "context_recall")


def row_record(row: EvalRow) -> dict[str, Any]:
    """An evaluation row as the page's JSON (its passages go to the page's shared map)."""
    extra = row.extra
    return {
        "method": row.method, "dataset": row.dataset, "id": row.id, "question": row.question, "gold": row.answers,
        "answer": row.answer, "scores": {k: getattr(row, k) for k in _SCORES}, "context": row.context_ids,
        "searches": row.searches, "turns": row.turns, "seconds": row.seconds,
        "stop_reason": extra.get("stop_reason"), "trace": extra.get("trace", []), "passages": extra.get("passages", {}),
    }


def episode_record(state: Mapping[str, Any], answer: str | None = None, *, method: str = "s3",
                   dataset: str = "search") -> dict[str, Any]:
    """One searcher episode (a final :class:`~s3_agents.graph.SearchState`) as the page's JSON, unscored."""
    trace = s3_trace(state)
    return {
        "method": method, "dataset": dataset, "id": "1", "question": state["question"], "gold": [],
        "answer": answer or "", "scores": None, "context": [p.id for p in state["context"]],
        "searches": len(state["queries"]), "turns": len(state["outputs"]), "seconds": None,
        "stop_reason": state.get("stop_reason"), **trace.extra(state["context"]),
    }


def _table(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    datasets = sorted({d for per in summary.values() for d in per if d != "avg"})
    head = "".join(f"<th>{html.escape(d)}</th>" for d in [*datasets, "Avg"])
    body = []
    for method, per in summary.items():
        cells = [f"<td>{per[d]['genacc']:.1f} ({per[d]['em']:.1f})</td>" if d in per else "<td>–</td>"
                 for d in [*datasets, "avg"]]
        body.append(f"<tr><th>{html.escape(method)}</th>{''.join(cells)}</tr>")
    return (f"<table class='summary'><thead><tr><th>method</th>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table><p class='muted'>GenAcc (%) with exact match in brackets; Avg weighs every dataset the same.</p>")


def _image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(Path(path).stem)}' src='data:image/png;base64,{data}'>"


def html_report(records: Sequence[Mapping[str, Any]], *, title: str = "s3 evaluation",
                summary: Mapping[str, Any] | None = None, plots: Sequence[Path] = (),
                notes: Sequence[str] = ()) -> str:
    """The page, as one string.

    Args:
        records: Answers, as :func:`row_record` or :func:`episode_record` make them.
        title: The page title.
        summary: :func:`~s3_agents.evaluation.summarize` output, shown as the methods x datasets table.
        plots: PNG files embedded under the table.
        notes: Lines shown under the title (the run's settings).
    """
    passages: dict[str, Any] = {}
    rows = []
    for record in records:
        passages.update(record.get("passages", {}))
        rows.append({k: v for k, v in record.items() if k != "passages"})
    # "</" never appears inside the script element, whatever the data holds.
    payload = json.dumps({"rows": rows, "passages": passages}, ensure_ascii=False).replace("<", "\\u003c")
    top = "".join([
        "".join(f"<p class='muted'>{html.escape(n)}</p>" for n in notes),
        _table(summary) if summary else "",
        f"<div class='plots'>{''.join(_image(p) for p in plots)}</div>" if plots else "",
    ])
    values = {"title": html.escape(title), "top": top, "data": payload, "style": _STYLE, "script": _SCRIPT}
    # One pass: a title or a note that reads "{data}" stays text.
    return re.sub(r"\{(title|top|data|style|script)\}", lambda m: values[m.group(1)], _PAGE)


def write_html_report(path: str | Path, records: Sequence[Mapping[str, Any]], **options: Any) -> Path:
    """Write :func:`html_report` to ``path`` atomically; returns the path.

    Example:
        >>> write_html_report("report.html", [episode_record(state, answer)], title="one episode")  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, html_report(records, **options).encode("utf-8"))
    return path


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><p id="meta" class="muted"></p></header>
<section id="top">{top}</section>
<section id="browser">
  <h2>Answers</h2>
  <div class="controls">
    <label>method <select id="f-method"><option value="">all</option></select></label>
    <label>dataset <select id="f-dataset"><option value="">all</option></select></label>
    <label>answer <select id="f-outcome"><option value="">all</option><option value="correct">correct</option>
      <option value="incorrect">incorrect</option></select></label>
    <label>question <input id="f-text" type="search" placeholder="filter by words"></label>
    <span id="count" class="muted"></span>
  </div>
  <div id="episodes"></div>
</section>
<section id="compare">
  <h2>Side by side</h2>
  <div class="controls">
    <label>question <select id="c-question"></select></label>
    <label>left <select id="c-left"></select></label>
    <label>right <select id="c-right"></select></label>
  </div>
  <div class="panes"><div id="c-a" class="pane"></div><div id="c-b" class="pane"></div></div>
</section>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px 48px;
       color: #1d1d1f; background: #fff; }
h1 { font-size: 22px; margin: 18px 0 2px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h4 { margin: 10px 0 4px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #555; }
.muted { color: #6e6e73; } table.summary { border-collapse: collapse; margin: 8px 0; }
table.summary th, table.summary td { border: 1px solid #d2d2d7; padding: 4px 10px; text-align: right; }
table.summary th:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; } .plots img { width: 100%; max-width: 560px; }
.controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 6px 0 10px; }
select, input { font: inherit; padding: 2px 4px; }
details.episode { border: 1px solid #d2d2d7; border-radius: 6px; margin: 6px 0; padding: 4px 10px; }
details.episode > summary { cursor: pointer; padding: 3px 0; }
.badge { display: inline-block; min-width: 16px; padding: 0 6px; border-radius: 9px; color: #fff;
         font-weight: 600; text-align: center; }
.badge.correct { background: #1e8e3e; } .badge.incorrect { background: #c5221f; } .badge.unscored { background: #888; }
.tag { font-size: 12px; background: #eef; border-radius: 4px; padding: 0 5px; margin-right: 4px; }
.tag.ds { background: #efe; }
.qa div { margin: 2px 0; } .scores { color: #444; font-size: 13px; }
.step { border-left: 3px solid #c7c7cc; margin: 6px 0; padding: 2px 8px; }
.step.retrieval { border-color: #e3a008; } .step.generation { border-color: #4f6bed; }
.step.invalid { border-color: #c5221f; background: #fdf0ef; }
.step .label { font-weight: 600; font-size: 13px; }
pre { white-space: pre-wrap; word-break: break-word; background: #f5f5f7; padding: 6px; margin: 4px 0;
      font-size: 12.5px; }
ol.passages { margin: 4px 0; padding-left: 26px; } li.passage { margin: 2px 0; }
li.passage.selected { background: #e6f4ea; } .pid { font-family: monospace; font-size: 12px; color: #6e6e73; }
.panes { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.pane { border: 1px solid #d2d2d7; border-radius: 6px; padding: 6px 10px; min-height: 60px; }
"""

_SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const PASSAGES = DATA.passages;
const ROWS = DATA.rows;

function el(tag, cls, ...children) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
function outcome(r) { return r.scores ? (r.scores.genacc >= 1 ? "correct" : "incorrect") : "unscored"; }
function badge(r) {
  const kind = outcome(r);
  return el("span", "badge " + kind, kind === "correct" ? "\u2713" : kind === "incorrect" ? "\u2717" : "\u2013");
}
function pct(x) { return (100 * x).toFixed(0); }
function scoreLine(r) {
  const parts = [];
  if (r.scores) {
    parts.push("GenAcc " + pct(r.scores.genacc), "EM " + pct(r.scores.em), "F1 " + pct(r.scores.f1),
               "answer in context " + pct(r.scores.context_recall));
  }
  parts.push("searches " + r.searches, "turns " + r.turns);
  if (r.stop_reason) parts.push("stop: " + r.stop_reason);
  if (r.seconds !== null && r.seconds !== undefined) parts.push(r.seconds.toFixed(1) + " s");
  return parts.join(" \u00b7 ");
}
function passageList(ids, selected) {
  const list = el("ol", "passages");
  for (const id of ids) {
    const p = PASSAGES[id] || ["(passage not recorded)", ""];
    const keep = selected && selected.includes(id);
    list.append(el("li", keep ? "passage selected" : "passage", el("span", "pid", "[" + id + "] "),
                   el("b", null, p[0]), p[1] ? ": " + p[1] : "", keep ? " \u2190 selected" : ""));
  }
  return list;
}
function stepView(step, first) {
  if (step.type === "retrieval") {
    const box = el("div", "step retrieval",
                   el("div", "label", first ? "initial retrieval: " : "search: ", el("q", null, step.query)),
                   passageList(step.passages, step.selected));
    if (step.selected) {
      box.append(el("div", "muted", "selected: " + (step.selected.length ? step.selected.join(", ") : "none")));
    }
    return box;
  }
  return el("div", step.problem ? "step generation invalid" : "step generation",
            el("div", "label", step.problem ? "invalid action: " + step.problem : "model output"),
            el("pre", null, step.output));
}
function episodeBody(r) {
  const body = el("div", "body");
  body.append(el("div", "qa",
                 el("div", null, el("b", null, "question: "), r.question),
                 el("div", null, el("b", null, "gold: "), r.gold.length ? r.gold.join(" | ") : "\u2013"),
                 el("div", null, el("b", null, "answer: "), r.answer || "(empty)"),
                 el("div", "scores", scoreLine(r))));
  body.append(el("h4", null, "steps"));
  if (!r.trace.length) body.append(el("p", "muted", "no steps recorded"));
  r.trace.forEach((step, i) => body.append(stepView(step, i === 0 && step.type === "retrieval")));
  body.append(el("h4", null, "context given to the generator (" + r.context.length + ")"),
              passageList(r.context, null));
  return body;
}
function episode(r) {
  const node = el("details", "episode");
  node.append(el("summary", null, badge(r), " ", el("span", "tag", r.method), el("span", "tag ds", r.dataset),
                 r.question));
  node.addEventListener("toggle", () => {
    if (node.open && !node.dataset.filled) { node.append(episodeBody(r)); node.dataset.filled = "1"; }
  });
  return node;
}
function options(select, values) {
  for (const v of values) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v;
    select.append(o);
  }
}
const methods = [...new Set(ROWS.map(r => r.method))];
const datasets = [...new Set(ROWS.map(r => r.dataset))];
document.getElementById("meta").textContent = ROWS.length + " answers \u00b7 methods: " + methods.join(", ") +
  " \u00b7 datasets: " + datasets.join(", ");
options(document.getElementById("f-method"), methods);
options(document.getElementById("f-dataset"), datasets);

const items = ROWS.map(r => ({ r, node: episode(r) }));
const list = document.getElementById("episodes");
for (const item of items) list.append(item.node);
function applyFilters() {
  const m = document.getElementById("f-method").value, d = document.getElementById("f-dataset").value;
  const o = document.getElementById("f-outcome").value;
  const words = document.getElementById("f-text").value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const { r, node } of items) {
    const q = r.question.toLowerCase();
    const ok = (!m || r.method === m) && (!d || r.dataset === d) && (!o || outcome(r) === o) &&
               words.every(w => q.includes(w));
    node.hidden = !ok;
    if (ok) shown += 1;
  }
  document.getElementById("count").textContent = shown + " of " + items.length + " shown";
}
for (const id of ["f-method", "f-dataset", "f-outcome"]) {
  document.getElementById(id).addEventListener("change", applyFilters);
}
document.getElementById("f-text").addEventListener("input", applyFilters);
applyFilters();

const questions = new Map();
for (const r of ROWS) { const key = r.dataset + "\u0000" + r.id; if (!questions.has(key)) questions.set(key, r); }
const cq = document.getElementById("c-question"), cl = document.getElementById("c-left");
const cr = document.getElementById("c-right");
for (const [key, r] of questions) {
  const o = document.createElement("option");
  o.value = key;
  o.textContent = r.dataset + " / " + r.id + ": " + r.question;
  cq.append(o);
}
options(cl, methods);
options(cr, methods);
if (methods.length > 1) cr.value = methods[methods.length - 1];
function pane(target, method) {
  target.replaceChildren();
  const [dataset, id] = cq.value.split("\u0000");
  const r = ROWS.find(x => x.method === method && x.dataset === dataset && x.id === id);
  if (!r) { target.append(el("p", "muted", method + " has no answer for this question")); return; }
  target.append(el("div", "label", badge(r), " ", el("span", "tag", r.method)), episodeBody(r));
}
function renderCompare() {
  pane(document.getElementById("c-a"), cl.value);
  pane(document.getElementById("c-b"), cr.value);
}
for (const select of [cq, cl, cr]) select.addEventListener("change", renderCompare);
renderCompare();
"""
