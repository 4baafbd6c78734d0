"""Evaluation: methods (no retrieval, naive RAG, s3, query rewriting, IRCoT, Search-R1 style) x QA datasets,
scored with GenAcc, EM, F1 and answer recall in the context, into resumable results and a report.

Example:
    >>> import asyncio
    >>> from s3_agents import FaissRetriever, Generator, HashingEmbedder, load_demo_corpus
    >>> from s3_agents.qa import load_demo_qa
    >>> from s3_agents.testing import ScriptedClient
    >>> retriever = FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder())
    >>> generator = Generator(ScriptedClient(lambda messages: "Traeceith"))
    >>> rows = asyncio.run(evaluate([NaiveRAG(retriever, generator)], {"demo": load_demo_qa()[:2]},
    ...                             "/tmp/s3-eval-doctest/results.jsonl", show_progress=False))
    >>> [(r.id, r.genacc) for r in rows]
    [('q1', 1.0), ('q2', 0.0)]
"""

from s3_agents.evaluation.methods import (
    IRCoT,
    Method,
    MethodResult,
    NaiveRAG,
    NoRetrieval,
    QueryRewrite,
    S3Method,
    SearchR1Style,
)
from s3_agents.evaluation.registry import METHOD_NAMES, build_methods
from s3_agents.evaluation.report import summarize, write_report
from s3_agents.evaluation.runner import EvalRow, ResultsFile, evaluate

__all__ = [
    "Method", "MethodResult", "METHOD_NAMES", "NoRetrieval", "NaiveRAG", "S3Method", "QueryRewrite", "IRCoT",
    "SearchR1Style", "build_methods", "evaluate", "EvalRow", "ResultsFile", "summarize", "write_report",
]
