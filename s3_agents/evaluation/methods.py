"""Evaluation methods: ways to get a context (and an answer) for a question, all judged the same way.

Every method returns the passages it found; the frozen generator answers from them (``search-r1-self``
is the one exception: the searcher's own answer is scored, as the paper's "(self)" rows). The
baselines are compact re-statements of the published strategies on our clients and retrievers, not
the original code; the docstrings say what differs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from s3_agents.config import SearchConfig
from s3_agents.evaluation.trace import Trace, s3_trace
from s3_agents.generator import Generator
from s3_agents.llm.base import ChatClient, Completion, Message
from s3_agents.protocol import format_information
from s3_agents.retrievers.base import Retriever
from s3_agents.retrievers.bm25 import BM25Retriever
from s3_agents.types import Passage

__all__ = [
    "MethodResult", "Method", "TokenCounter", "NoRetrieval", "NaiveRAG", "S3Method", "QueryRewrite", "IRCoT",
    "SearchR1Style",
]

@dataclass
class MethodResult:
    """What a method produced for one question."""

    answer: str
    context: list[Passage]
    searches: int = 0
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


class Method(Protocol):
    """A named strategy: ``await method.arun(question)`` -> :class:`MethodResult`."""

    name: str

    async def arun(self, question: str) -> MethodResult: ...


class TokenCounter:
    """Wraps a client and adds up the tokens of every call (as the server reports them)."""

    def __init__(self, client: ChatClient) -> None:
        self.client, self.model = client, client.model
        self.prompt_tokens = self.completion_tokens = self.calls = 0

    def _count(self, reply: Completion) -> Completion:
        self.calls += 1
        self.prompt_tokens += reply.prompt_tokens or 0
        self.completion_tokens += reply.completion_tokens or 0
        return reply

    def chat(self, messages: Sequence[Message], **kwargs: object) -> Completion:
        return self._count(self.client.chat(messages, **kwargs))  # type: ignore[arg-type]

    async def achat(self, messages: Sequence[Message], **kwargs: object) -> Completion:
        return self._count(await self.client.achat(messages, **kwargs))  # type: ignore[arg-type]

    def complete(self, prompt: str | Sequence[int], **kwargs: object) -> Completion:
        return self._count(self.client.complete(prompt, **kwargs))  # type: ignore[arg-type]

    async def acomplete(self, prompt: str | Sequence[int], **kwargs: object) -> Completion:
        return self._count(await self.client.acomplete(prompt, **kwargs))  # type: ignore[arg-type]


async def _answer(generator: Generator, question: str, passages: Sequence[Passage], started: float,
                  counter: TokenCounter | None = None, **fields: object) -> MethodResult:
    gen = TokenCounter(generator.client)
    answer = await Generator(gen, max_tokens=generator.max_tokens).aanswer(question, passages)
    prompt = gen.prompt_tokens + (counter.prompt_tokens if counter else 0)
    completion = gen.completion_tokens + (counter.completion_tokens if counter else 0)
    return MethodResult(answer=answer, context=list(passages), prompt_tokens=prompt, completion_tokens=completion,
                        seconds=time.perf_counter() - started, **fields)  # type: ignore[arg-type]


def _dedupe(passages: Sequence[Passage]) -> list[Passage]:
    seen: set[str] = set()
    return [p for p in passages if not (p.id in seen or seen.add(p.id))]


class NoRetrieval:
    """``no-retrieval``: the generator answers from its own knowledge (the paper's "Direct")."""

    name = "no-retrieval"

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    async def arun(self, question: str) -> MethodResult:
        return await _answer(self.generator, question, [], time.perf_counter())


class NaiveRAG:
    """``naive-rag`` / ``naive-rag-bm25``: top-k documents for the raw question (s3's RAG-E5 / RAG-BM25 rows, k=3).

    Args:
        retriever: The search engine (dense for the paper's RAG-E5 row, BM25 for RAG-BM25).
        generator: The frozen generator.
        k: Documents retrieved.
        name: The row's name, so one run can hold both engines.
    """

    def __init__(self, retriever: Retriever, generator: Generator, *, k: int = 3, name: str = "naive-rag") -> None:
        self.retriever, self.generator, self.k, self.name = retriever, generator, k, name

    async def arun(self, question: str) -> MethodResult:
        started = time.perf_counter()
        passages = (await self.retriever.asearch([question], self.k))[0]
        trace = Trace()
        trace.retrieval(question, passages)
        return await _answer(self.generator, question, passages, started, searches=1, turns=0,
                             extra=trace.extra(passages))


class S3Method:
    """``s3``: the s3 searcher (any policy: an untrained model, a trained checkpoint, an endpoint) selects the context.

    Args:
        policy: The searcher LLM.
        retriever: Its search engine.
        generator: The frozen generator.
        config: Loop settings (paper: 8-3-3).
        name: The row's name, so one run can compare searchers (e.g. ``"untrained"``, ``"ppo"``).
    """

    name = "s3"

    def __init__(self, policy: ChatClient, retriever: Retriever, generator: Generator,
                 config: SearchConfig | None = None, *, name: str = "s3") -> None:
        self.policy, self.retriever, self.generator = policy, retriever, generator
        self.config = config or SearchConfig()
        self.name = name

    async def arun(self, question: str) -> MethodResult:
        from s3_agents.llm.reference import ReferenceFormatClient
        from s3_agents.searcher import S3Searcher

        started = time.perf_counter()
        if isinstance(self.policy, ReferenceFormatClient):  # count below the format, where the ids are sent
            counter = TokenCounter(self.policy.client)
            policy: ChatClient = ReferenceFormatClient(counter, self.policy.tokenizer)  # type: ignore[arg-type]
        else:
            counter = policy = TokenCounter(self.policy)  # type: ignore[assignment]
        state = await S3Searcher(policy, self.retriever, self.config).asearch(question)
        return await _answer(self.generator, question, state["context"], started, counter,
                             searches=len(state["queries"]), turns=len(state["outputs"]),
                             extra={"queries": state["queries"], "invalid": state["invalid"],
                                    "stop_reason": state["stop_reason"], **s3_trace(state).extra(state["context"])})


_REWRITE_PROMPT = """\
Rewrite the question into one search query that finds the documents answering it. Keep names and key \
terms; drop filler words.{bm25}
Question: {question}
Write only the query between <query> and </query>."""

_QUERY_TAG = re.compile(r"<query>(.*?)(?:</query>|$)", re.S)


class QueryRewrite:
    """``query-rewrite`` / ``query-rewrite-bm25``: an LLM turns the question into one query, then top-k retrieval.

    The shape of DeepRetrieval's inference (a query rewriter, RL-trained there, in front of a search
    engine; the paper's row is DeepRetrieval-BM25); any model can be the rewriter here. Over BM25 the
    prompt says so (``bm25``: default, whether ``retriever`` is a :class:`BM25Retriever`; say ``True`` for a
    BM25 retrieval server). An empty or unparsable rewrite falls back to the question.
    """

    def __init__(self, rewriter: ChatClient, retriever: Retriever, generator: Generator, *, k: int = 3,
                 name: str = "query-rewrite", bm25: bool | None = None) -> None:
        self.rewriter, self.retriever, self.generator, self.k, self.name = rewriter, retriever, generator, k, name
        self.bm25 = isinstance(retriever, BM25Retriever) if bm25 is None else bm25

    async def arun(self, question: str) -> MethodResult:
        started = time.perf_counter()
        counter = TokenCounter(self.rewriter)
        hint = " The engine matches keywords (BM25): use the words the documents would contain." if self.bm25 else ""
        reply = await counter.achat([{"role": "user", "content": _REWRITE_PROMPT.format(bm25=hint, question=question)}],
                                    max_tokens=64, temperature=0.0)
        match = _QUERY_TAG.search(reply.text)
        query = (match.group(1) if match else reply.text).strip().strip('"') or question
        passages = (await self.retriever.asearch([query], self.k))[0]
        trace = Trace()
        trace.generation(reply.text)
        trace.retrieval(query, passages)
        return await _answer(self.generator, question, passages, started, counter, searches=1, turns=1,
                             extra={"queries": [query], **trace.extra(passages)})


_IRCOT_PROMPT = """\
Answer the question by reasoning step by step over the documents. Write only the next single sentence of \
your reasoning. When you know the answer, write a sentence that starts with "So the answer is".

{documents}
Question: {question}
Reasoning so far: {thoughts}
Next sentence:"""


class IRCoT:
    """``ircot``: interleaved retrieval and chain of thought (Trivedi et al. 2023), compact form.

    Retrieve for the question; then repeatedly let the LLM write one reasoning sentence over everything
    retrieved so far and use that sentence as the next query, until it writes "So the answer is" or
    ``max_steps`` searches are spent (s3's comparison: 4 turns, 3 documents each). The collected documents
    go to the frozen generator. Differences from the paper: zero-shot instead of its few-shot demonstrations,
    and one sentence per step from a chat model.
    """

    name = "ircot"

    def __init__(self, reasoner: ChatClient, retriever: Retriever, generator: Generator, *, k: int = 3,
                 max_steps: int = 4) -> None:
        self.reasoner, self.retriever, self.generator = reasoner, retriever, generator
        self.k, self.max_steps = k, max_steps

    async def arun(self, question: str) -> MethodResult:
        started = time.perf_counter()
        counter = TokenCounter(self.reasoner)
        passages = list((await self.retriever.asearch([question], self.k))[0])
        trace = Trace()
        trace.retrieval(question, passages)
        thoughts: list[str] = []
        searches, turns = 1, 0
        while searches < self.max_steps:
            prompt = _IRCOT_PROMPT.format(documents=format_information(passages), question=question,
                                          thoughts=" ".join(thoughts) or "(none)")
            reply = await counter.achat([{"role": "user", "content": prompt}], max_tokens=64, temperature=0.0)
            turns += 1
            trace.generation(reply.text)
            sentence = reply.text.strip().split("\n")[0].strip()
            if not sentence or "answer is" in sentence.lower():
                break
            thoughts.append(sentence)
            found = (await self.retriever.asearch([sentence], self.k))[0]
            trace.retrieval(sentence, found)
            passages = _dedupe(passages + found)
            searches += 1
        return await _answer(self.generator, question, passages, started, counter, searches=searches, turns=turns,
                             extra={"queries": [question, *thoughts], **trace.extra(passages)})


_SEARCH_R1_PROMPT = """\
Answer the given question. Reason inside <think> and </think> first every time you get new information. \
If you lack knowledge, search by writing <search> query </search>; the results come back between \
<information> and </information>. Search as many times as you need. When you can answer, write the answer \
inside <answer> and </answer> with no explanation, for example <answer> Beijing </answer>.
Question: {question}"""

_SEARCH = re.compile(r"<search>(.*?)(?:</search>|$)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)


class SearchR1Style:
    """``search-r1`` / ``search-r1-self``: one model reasons, searches and answers in a single trajectory.

    The Search-R1 protocol (``<think>``, ``<search>``, ``<information>``, ``<answer>``) with at most
    ``max_turns`` searches of ``k`` documents (s3's comparison: 4 and 3). ``search-r1`` ("(Ret)" in the
    paper) hands every retrieved document to the frozen generator; ``search-r1-self`` scores the model's own
    ``<answer>``. Any model can play it; the paper used the RL-trained Search-R1 checkpoints.
    """

    def __init__(self, model: ChatClient, retriever: Retriever, generator: Generator, *, k: int = 3,
                 max_turns: int = 4, self_answer: bool = False) -> None:
        self.model, self.retriever, self.generator = model, retriever, generator
        self.k, self.max_turns, self.self_answer = k, max_turns, self_answer
        self.name = "search-r1-self" if self_answer else "search-r1"

    async def arun(self, question: str) -> MethodResult:
        started = time.perf_counter()
        counter = TokenCounter(self.model)
        messages: list[Message] = [{"role": "user", "content": _SEARCH_R1_PROMPT.format(question=question)}]
        passages: list[Passage] = []
        queries: list[str] = []
        own_answer = ""
        turns = 0
        trace = Trace()
        for _ in range(self.max_turns + 1):
            reply = await counter.achat(messages, max_tokens=256, temperature=0.0, stop=["</search>", "</answer>"])
            turns += 1
            text = reply.text
            trace.generation(text)
            answer, search = _ANSWER.search(text), _SEARCH.search(text)
            if answer:
                own_answer = answer.group(1).strip()
                break
            if not search or not search.group(1).strip() or len(queries) >= self.max_turns:
                own_answer = text.strip().split("\n")[-1] if not search else own_answer
                break
            query = search.group(1).strip()
            queries.append(query)
            found = (await self.retriever.asearch([query], self.k))[0]
            trace.retrieval(query, found)
            passages = _dedupe(passages + list(found))
            messages += [{"role": "assistant", "content": text.split("<search>")[0] + f"<search> {query} </search>"},
                         {"role": "user", "content": format_information(found)}]
        fields = {"searches": len(queries), "turns": turns,
                  "extra": {"queries": queries, "own_answer": own_answer, **trace.extra(passages)}}
        if self.self_answer:
            return MethodResult(answer=own_answer, context=passages, prompt_tokens=counter.prompt_tokens,
                                completion_tokens=counter.completion_tokens,
                                seconds=time.perf_counter() - started, **fields)  # type: ignore[arg-type]
        return await _answer(self.generator, question, passages, started, counter, **fields)
