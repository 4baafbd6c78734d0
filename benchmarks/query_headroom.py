"""How much the searcher's query can add on real questions, and whether choosing it among read spans helps.

On the real split (``runs/realqa`` from ``s3 data``), dense retrieval, a 3-document budget:

* offline, no LLM: answer-in-context of naive top-3, and of the initial top-2 plus the first new document that one
  query brings, for the oracle chain's last query (the bridge entity), the best, first and a random candidate
  span (capitalised runs of words in the initial documents' text that the question does not contain and that
  are not a shown title; the random one is its expectation), and two
  similarity picks (the span closest to the question; the span whose new document is closest to it);
* ``--rank-adapter A``: the same offline measure for the span the searcher ``A`` finds most likely (the sum of its
  tokens' log-probabilities after it keeps the first document, transformers), and how often one of its three most
  likely spans finds the answer: whether choosing by the whole span's likelihood, or among a few, would beat the
  grammar's greedy choice; and two ways of using those few without an oracle (of the three, the one whose new
  document is closest to the question; two searches, its two most likely spans, beside the first initial document);
* ``--adapter A``: the searcher ``A`` (llama.cpp, constrained, 5-3-3, budget filled) with its query restricted by
  the grammar to those spans of what it has read (``SearchConfig(query_spans=True)``), evaluated like
  ``train_real.py --stage dev`` (rows in ``docs/train-real/rows/eval-<split>-spans-<name>.jsonl``, method
  ``--name``).

* ``--target-ties`` (only this): of the questions whose first search could bring a missing supporting passage, how
  many have a single read name that ranks it highest: how many span targets a teacher could give per question.

Run: ``python benchmarks/query_headroom.py [--adapter s3_agents/data/searchers/real --name ws-spans]
[--rank-adapter s3_agents/data/searchers/real]``, ``python benchmarks/query_headroom.py --target-ties --split train
--limit 677``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from train_local import BUDGET, SEARCH, TURN_TOKENS
from train_real import KEPT, keep_rows

REPO = Path(__file__).resolve().parent.parent


def _first_new(results: list[Any], first: list[Any]) -> Any:
    """The first of ``results`` that is not one of the initial documents ``first`` (``None``: all are)."""
    seen = {p.id for p in first}
    return next((p for p in results if p.id not in seen), None)


def _reaches(first: list[Any], results: list[Any], answers: list[str]) -> bool:
    """Whether the initial top 2 plus the first new document of one query's ``results`` hold an answer."""
    from s3_agents.metrics import answer_in_context

    new = _first_new(results, first)
    return answer_in_context(first[:2] + ([new] if new else []), answers) > 0


def _closest_new(embed: Any, question: np.ndarray, first: list[Any], results: list[list[Any]]) -> int:
    """Which of ``results`` (one query's each) brings the first new document closest to ``question``, the
    question's vector from ``embed``."""
    texts = [f"{p.title} {p.text}" if p else "" for p in (_first_new(r, first) for r in results)]
    return int(np.argmax(embed.embed_passages(texts) @ question))


def headroom(questions: list[dict[str, Any]], dense: Any) -> dict[str, float]:
    """Answer-in-context (%) of naive top-3 and of top-2 plus one query's first new document, per query choice."""
    from s3_agents.metrics import answer_in_context
    from s3_agents.protocol import candidate_spans

    hits: dict[str, float] = dict.fromkeys(("naive top-3", "oracle bridge", "best span", "first span",
                                            "random span", "span closest to the question",
                                            "span whose new document is closest"), 0.0)
    embed = dense.embedder
    for q in questions:
        first = dense.search([q["question"]], 3)[0]
        hits["naive top-3"] += answer_in_context(first, q["answers"]) > 0
        hits["oracle bridge"] += _reaches(first, dense.search([q["chain"][-1]["query"]], 3)[0], q["answers"])
        spans = candidate_spans(q["question"], [(p.title or "", p.text) for p in first])
        if not spans:
            continue
        results = dense.search(spans, 3)
        each = [_reaches(first, r, q["answers"]) for r in results]
        hits["best span"] += any(each)
        hits["first span"] += each[0]
        hits["random span"] += sum(each) / len(each)           # its expectation
        question = embed.embed_queries([q["question"]])[0]
        hits["span closest to the question"] += each[int(np.argmax(embed.embed_passages(spans) @ question))]
        hits["span whose new document is closest"] += each[_closest_new(embed, question, first, results)]
    return {name: round(100 * n / len(questions), 1) for name, n in hits.items()}


def target_ties(questions: list[dict[str, Any]], dense: Any, k: int = 5) -> dict[str, int]:
    """How many span targets a first search could have: of the questions whose initial top 3 lacks a passage of
    the chain's last 3 hops (the ones the span teacher keeps), those where a read name retrieves one within its
    ``k`` results, and those where a single name ranks it highest (the rest tie)."""
    from s3_agents.protocol import candidate_spans
    from s3_agents.training.trajectories import span_ranks

    out = dict.fromkeys(("need a search", "some read name retrieves a missing passage", "a single best name"), 0)
    for q in questions:
        first = dense.search([q["question"]], 3)[0]
        wanted = {hop["passage_id"] for hop in q["chain"][-BUDGET:]} - {p.id for p in first}
        spans = candidate_spans(q["question"], [(p.title or "", p.text) for p in first]) if wanted else []
        out["need a search"] += bool(wanted)
        ranks = [r for r in span_ranks(dense, spans, wanted, k) if r is not None]
        out["some read name retrieves a missing passage"] += bool(ranks)
        out["a single best name"] += bool(ranks) and ranks.count(min(ranks)) == 1
    return out


# The searcher's first turn when it keeps the first document and searches, up to the query's text.
_QUERY_PREFIX = '<important_info>[1]</important_info>\n<search_complete>False</search_complete>\n<query>{"query": "'


def likelihood_choice(questions: list[dict[str, Any]], dense: Any, adapter: Path) -> dict[str, float]:
    """Answer-in-context (%) of top-2 plus the first new document of the span the searcher finds most likely, of
    the best of its three most likely spans, of the one of those three whose new document is closest to the question
    (by the dense embedder), and of two searches (its two most likely spans) with the first initial document."""
    import torch
    from peft import PeftModel

    from s3_agents.config import SearchConfig
    from s3_agents.metrics import answer_in_context
    from s3_agents.protocol import candidate_spans
    from s3_agents.searcher import S3Searcher
    from s3_agents.testing import ScriptedClient
    from s3_agents.training.local_server import load_policy_model

    model, tokenizer = load_policy_model()
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    config = SearchConfig.from_name(SEARCH, max_new_tokens=TURN_TOKENS, max_context_docs=BUDGET)
    hits = dict.fromkeys(("searcher's most likely span", "best of its 3 most likely spans",
                          "of its 3 most likely, the one whose new document is closest",
                          "its 2 most likely, each one's first new document, initial top 1"), 0.0)
    for q in questions:
        first = dense.search([q["question"]], 3)[0]
        spans = candidate_spans(q["question"], [(p.title or "", p.text) for p in first])
        if not spans:
            continue
        stop = ScriptedClient(["<important_info>[1]</important_info><search_complete>True</search_complete>"])
        S3Searcher(stop, dense, config).search(q["question"])            # records the searcher's first prompt
        text = tokenizer.apply_chat_template(stop.calls[0], tokenize=False, add_generation_prompt=True)
        prompt = tokenizer(text, add_special_tokens=False).input_ids
        turn = tokenizer(text + _QUERY_PREFIX, add_special_tokens=False).input_ids
        with torch.no_grad():
            cache = model(torch.tensor([prompt[:-1]]), use_cache=True).past_key_values
            scores = []
            for span in spans:                 # log p(span tokens | prompt, prefix), the prompt computed once
                full = tokenizer(text + _QUERY_PREFIX + span + '"}', add_special_tokens=False).input_ids
                cut = next(i for i, (a, b) in enumerate(zip([*turn, -1], full)) if a != b)  # the span's tokens
                logits = model(torch.tensor([full[len(prompt) - 1:-1]]), past_key_values=cache).logits[0]
                cache.crop(len(prompt) - 1)
                targets = torch.tensor(full[len(prompt):])
                logp = torch.log_softmax(logits.float(), -1).gather(1, targets[:, None])[:, 0]
                scores.append(float(logp[cut - len(prompt):].sum()))
        order = np.argsort(scores)[::-1][:3]
        results = dense.search([spans[i] for i in order], 3)
        found = [_reaches(first, r, q["answers"]) for r in results]
        hits["searcher's most likely span"] += found[0]
        hits["best of its 3 most likely spans"] += any(found)
        question = dense.embedder.embed_queries([q["question"]])[0]
        hits["of its 3 most likely, the one whose new document is closest"] += found[
            _closest_new(dense.embedder, question, first, results)]
        # two searches (its two most likely spans): the first initial document and each one's first new document;
        # a question with a single candidate span counts as a miss
        if len(results) > 1:
            one = _first_new(results[0], first)
            two = _first_new(results[1], first + ([one] if one else []))
            hits["its 2 most likely, each one's first new document, initial top 1"] += answer_in_context(
                first[:1] + [p for p in (one, two) if p], q["answers"]) > 0
    return {name: round(100 * n / len(questions), 1) for name, n in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "realqa")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--adapter", type=Path, help="also evaluate this searcher with span-constrained queries")
    parser.add_argument("--name", default="ws-spans", help="the searcher's method name in the rows")
    parser.add_argument("--rank-adapter", type=Path, help="also rank the spans by this searcher's likelihood")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train-real")
    parser.add_argument("--target-ties", action="store_true",
                        help="only count the questions whose first search has one best read name (target_ties)")
    args = parser.parse_args()

    from s3_agents.retrievers import load_retriever
    from s3_agents.worlds import load_world

    world, dense = load_world(args.data), load_retriever(args.data / "index-dense")
    questions = world.sample(args.split, args.limit)
    if args.target_ties:
        for name, count in target_ties(questions, dense).items():
            print(f"{args.split}, {len(questions)} questions: {name}: {count}")
        return
    print(f"| {args.split}, {len(questions)} questions | answer in context |\n|---|---:|")
    table = headroom(questions, dense)
    if args.rank_adapter is not None:
        table |= likelihood_choice(questions, dense, args.rank_adapter)
    for name, value in table.items():
        print(f"| {name} | {value} |")
    if args.adapter is None:
        return
    from s3_agents.config import SearchConfig
    from s3_agents.evaluation import S3Method, evaluate
    from s3_agents.generator import Generator
    from s3_agents.llm import LlamaCppClient, LocalLlamaServer, OpenAICompatClient, smollm2_gguf_path
    from s3_agents.qa import QAExample

    config = SearchConfig.from_name(SEARCH, max_new_tokens=TURN_TOKENS, constrained=True, query_spans=True,
                                    max_context_docs=BUDGET, fill_context=True)
    policy = LlamaCppClient(smollm2_gguf_path(), adapter=args.adapter, n_ctx=8192)
    examples = [QAExample(q["question"], tuple(q["answers"]), q["id"], metadata={"supporting_ids": q["supporting_ids"]})
                for q in questions]
    results = args.out / f"eval-{args.split}-spans" / args.name / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    try:
        with LocalLlamaServer(n_ctx=8192) as server:
            generator = Generator(OpenAICompatClient(server.url, "smollm2"))
            asyncio.run(evaluate([S3Method(policy, dense, generator, config, name=args.name)],
                                 {f"real-{args.split}": examples}, results, judge=None, concurrency=1))
    finally:
        policy.close()
        keep_rows(results, KEPT / f"eval-{args.split}-spans-{args.name}.jsonl")


if __name__ == "__main__":
    main()
