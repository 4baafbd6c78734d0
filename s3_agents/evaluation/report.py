"""Turn evaluation rows into a Markdown report (the paper's table shape) and plots."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s3_agents.evaluation.html import row_record, write_html_report
from s3_agents.evaluation.registry import METHOD_NAMES
from s3_agents.evaluation.runner import EvalRow

__all__ = ["summarize", "markdown_table", "cost_table", "write_report", "bootstrap_ci", "paired_difference",
           "PAIRED_FIELDS"]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _average(values: Sequence[Any]) -> Any:
    if values and isinstance(values[0], tuple | list):
        return tuple(round(_mean([v[i] for v in values]), 1) for i in range(len(values[0])))
    return _mean(values)


def bootstrap_ci(values: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean of ``values`` (as percentages of 0/1 scores x 100).

    Example:
        >>> bootstrap_ci([1.0] * 30 + [0.0] * 70)
        (21.0, 39.0)
    """
    import numpy as np

    if not values:
        return (0.0, 0.0)
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (round(100 * float(low), 1), round(100 * float(high), 1))


PAIRED_FIELDS: tuple[tuple[str, str], ...] = (("genacc", "genacc"), ("answer_in_context", "context_recall"),
                                             ("support_recall", "support_recall"))
"""What :func:`paired_difference` compares: (name in its result, :class:`EvalRow` field)."""


def paired_difference(rows: Sequence[EvalRow], a: str, b: str, *,
                      fields: Sequence[tuple[str, str]] = PAIRED_FIELDS) -> dict[str, Any]:
    """Method ``a`` minus method ``b`` on the questions both answered: the mean difference in percentage points
    and its 95% paired bootstrap interval, per field (a field that no pair of rows holds is left out).

    Example:
        >>> paired_difference(rows, "s3", "naive-rag")                                    # doctest: +SKIP
        {'n': 100, 'genacc': 3.0, 'genacc_ci': [-2.0, 8.0], 'answer_in_context': 6.0, ...}
    """
    scores = {(row.method, row.dataset, row.id): row for row in rows}
    pairs = [(scores[key], scores[b, key[1], key[2]]) for key in scores
             if key[0] == a and (b, key[1], key[2]) in scores]
    out: dict[str, Any] = {"n": len(pairs)}
    for key, name in fields:
        diffs = [float(x) - float(y) for first, second in pairs
                 if (x := getattr(first, name, None)) is not None and (y := getattr(second, name, None)) is not None]
        if pairs and not diffs:
            continue
        out[key] = round(100 * sum(diffs) / max(1, len(diffs)), 1)
        out[f"{key}_ci"] = list(bootstrap_ci(diffs))
    return out


def _valid_rate(items: Sequence[EvalRow]) -> float | None:
    turns = sum(r.turns for r in items if "invalid" in r.extra)
    if not turns:
        return None
    return 100 * (1 - sum(int(r.extra["invalid"]) for r in items if "invalid" in r.extra) / turns)


def summarize(rows: Sequence[EvalRow]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {dataset | "avg": {genacc, em, f1, context_recall, searches, turns, tokens, seconds, n,
    context_docs, genacc_ci, context_recall_ci[, support_recall, support_recall_ci][, valid_action_rate]}}}``.

    Scores are percentages; ``*_ci`` are 95% bootstrap intervals of a dataset's mean (as ``[low, high]``);
    ``valid_action_rate`` is the share of searcher turns that were valid actions (methods with a searcher);
    ``support_recall`` is there where every row of the dataset has one (the data names supporting passages).
    "avg" averages the datasets (each dataset weighs the same, as the paper's Avg; intervals are averaged too).
    Methods come in :data:`METHOD_NAMES` order (baselines first, s3 last), other names after them.
    """
    groups: dict[str, dict[str, list[EvalRow]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[row.method][row.dataset].append(row)
    rank = {name: i for i, name in enumerate(METHOD_NAMES)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in sorted(groups, key=lambda m: (rank.get(m, len(rank)), m)):
        by_dataset = groups[method]
        out[method] = {}
        for dataset, items in sorted(by_dataset.items()):
            out[method][dataset] = {
                "genacc": 100 * _mean([r.genacc for r in items]), "em": 100 * _mean([r.em for r in items]),
                "f1": 100 * _mean([r.f1 for r in items]),
                "context_recall": 100 * _mean([r.context_recall for r in items]),
                "searches": _mean([r.searches for r in items]), "turns": _mean([r.turns for r in items]),
                "tokens": _mean([r.prompt_tokens + r.completion_tokens for r in items]),
                "seconds": _mean([r.seconds for r in items]), "n": float(len(items)),
                "context_docs": _mean([len(r.context_ids) for r in items]),
                "genacc_ci": bootstrap_ci([r.genacc for r in items]),
                "context_recall_ci": bootstrap_ci([r.context_recall for r in items]),
            }
            support = [r.support_recall for r in items]
            if all(s is not None for s in support):
                out[method][dataset]["support_recall"] = 100 * _mean(support)
                out[method][dataset]["support_recall_ci"] = bootstrap_ci(support)
            valid = _valid_rate(items)
            if valid is not None:
                out[method][dataset]["valid_action_rate"] = valid
        keys = next(iter(out[method].values())).keys()
        out[method]["avg"] = {k: _average([v[k] for v in out[method].values() if k in v]) for k in keys}
    return out


def markdown_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """Methods x datasets, GenAcc with EM in brackets, and the average: the shape of s3's Table 1."""
    datasets = sorted({d for per in summary.values() for d in per if d != "avg"})
    lines = ["| method | " + " | ".join(datasets) + " | Avg |", "|---" * (len(datasets) + 2) + "|"]
    for method, per in summary.items():
        cells = [f"{per[d]['genacc']:.1f} ({per[d]['em']:.1f})" if d in per else "–" for d in datasets]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {per['avg']['genacc']:.1f} ({per['avg']['em']:.1f}) |")
    return "\n".join(lines)


def cost_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """Per method, averaged over datasets: F1, answer recall in the context, context documents, searches, turns,
    valid-action rate, tokens, seconds."""
    lines = ["| method | F1 | answer in context | context docs | searches | turns | valid actions | tokens / question "
             "| s / question |", "|---|---|---|---|---|---|---|---|---|"]
    for method, per in summary.items():
        a = per["avg"]
        valid = f"{a['valid_action_rate']:.1f}%" if "valid_action_rate" in a else "–"
        lines.append(f"| {method} | {a['f1']:.1f} | {a['context_recall']:.1f} | {a.get('context_docs', 0):.1f} | "
                     f"{a['searches']:.2f} | {a['turns']:.2f} | {valid} | {a['tokens']:.0f} | {a['seconds']:.2f} |")
    return "\n".join(lines)


_MARKERS = "os^Dv<>PX*"


def _plots(summary: dict[str, dict[str, dict[str, float]]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary)
    style = {m: {"color": f"C{i % 10}", "marker": _MARKERS[i % len(_MARKERS)]} for i, m in enumerate(methods)}
    datasets = sorted({d for per in summary.values() for d in per if d != "avg"})
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(datasets) * max(1, len(methods)) / 3 + 3), 3.8))
    for i, method in enumerate(methods):
        xs = [j + i * width for j in range(len(datasets))]
        bars = ax.bar(xs, [summary[method].get(d, {}).get("genacc", 0.0) for d in datasets], width, label=method,
                      color=style[method]["color"])
        ax.bar_label(bars, fmt="%.1f", fontsize=6.5, padding=1)          # a 0 shows as "0.0", not as nothing
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(datasets))], datasets)
    ax.set_ylim(0, 105)
    ax.set_ylabel("GenAcc (%)")
    ax.set_title("Accuracy per method and dataset")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    accuracy = out / "accuracy.png"
    fig.savefig(accuracy, dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for method in methods:
        a = summary[method]["avg"]
        axes[0].scatter(a["searches"], a["genacc"], s=55, alpha=0.8, label=method, **style[method])
        axes[1].scatter(a["tokens"], a["genacc"], s=55, alpha=0.8, **style[method])
    tokens = [summary[m]["avg"]["tokens"] for m in methods]
    if min(tokens) > 0 and max(tokens) > 20 * min(tokens):
        axes[1].set_xscale("log")
    axes[0].set_xlabel("searches per question")
    axes[1].set_xlabel("LLM tokens per question (searcher + generator)")
    axes[0].set_ylabel("GenAcc (%), average over datasets")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="center left", bbox_to_anchor=(0.84, 0.5), frameon=False)
    fig.suptitle("Accuracy vs cost")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    cost = out / "cost.png"
    fig.savefig(cost, dpi=120)
    plt.close(fig)
    return [accuracy, cost]


def write_report(rows: Sequence[EvalRow], out: str | Path, *, title: str = "s3 evaluation",
                 notes: Sequence[str] = ()) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` (the trajectory browser), ``summary.json``, ``accuracy.png`` and
    ``cost.png`` into ``out``.

    Returns:
        ``{"summary": ..., "table": markdown, "files": [paths]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    table = markdown_table(summary)
    plots = _plots(summary, out)
    counts = {m: int(sum(v["n"] for d, v in per.items() if d != "avg")) for m, per in summary.items()}
    text = "\n".join([
        f"# {title}", "",
        "GenAcc (%) with exact match in brackets; Avg weighs every dataset the same.", "",
        table, "",
        "Cost and context, averaged over datasets:", "",
        cost_table(summary), "",
        f"Questions scored per method: {', '.join(f'{m} {n}' for m, n in counts.items())}.",
        *(["", *notes] if notes else []), "",
        "![accuracy](accuracy.png)", "", "![cost](cost.png)", "",
    ])
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    page = write_html_report(out / "report.html", [row_record(r) for r in rows], title=title, summary=summary,
                             plots=plots, notes=notes)
    return {"summary": summary, "table": table, "files": [out / "report.md", page, out / "summary.json", *plots]}
