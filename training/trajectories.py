"""Warm-start trajectories: searcher episodes turned into token ids with PPO's state mask.

Three sources, one output (:class:`Trajectory`: prompt ids, response ids, mask 1 exactly on the
searcher's own tokens, as the ``s3_searcher`` agent loop builds them for PPO):

* ``chain``: the synthetic world's own hop chains (:class:`ChainTeacher` reads each block, marks the
  hop passages it finds and asks the next hop's sub-question, or with a retriever the name it has read that
  retrieves a missing hop's passage);
* ``teacher``: any policy at an OpenAI-compatible endpoint;
* ``self``: best-of-K sampling of the model being trained, kept by Gain Beyond RAG (rejection sampling).

The first two produce texts; :func:`replay` runs them through the agent loop with
:class:`ReplayServer`, so the ids and the mask are exactly those PPO would see for the same turns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verl.workers.rollout.replica import TokenOutput

from s3_agents.config import SearchConfig
from s3_agents.errors import DataFileError
from s3_agents.llm.base import Message
from s3_agents.locks import atomic_path
from s3_agents.metrics import answer_in_context, normalize_answer
from s3_agents.protocol import candidate_spans, parse_information, prompt_question
from s3_agents.retrievers.base import Retriever
from s3_agents.training.agent_loop import S3AgentLoop
from s3_agents.training.policy import turn_closing_ids
from s3_agents.types import Passage

__all__ = ["Trajectory", "ChainTeacher", "seen_words", "is_observable", "span_ranks", "ReplayServer", "replay",
           "chain_trajectories", "teacher_trajectories", "best_of_k_trajectories", "write_trajectories",
           "read_trajectories"]

# Words a searcher may write without having read them: question words, auxiliaries, prepositions, articles.
_FREE_WORDS = frozenset("a an the of in on at to for by with from and or is are was were be been did does do has "
                        "have had there what who whom whose where when which why how many much".split())


@dataclass
class Trajectory:
    """One episode for supervised training.

    Attributes:
        question: The question.
        prompt_ids: The first prompt (instructions, question, initial documents) as token ids.
        response_ids: Everything after it: the searcher's turns and the inserted documents.
        response_mask: 1 on the searcher's tokens (trained), 0 on the environment's.
        outputs: The searcher's turns as text.
        source: ``"chain"``, ``"teacher"`` or ``"self"``.
        answer_in_context: Whether the final context holds a gold answer.
    """

    question: str
    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    outputs: list[str]
    source: str
    answer_in_context: bool = False

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _latest(messages: Sequence[Message]) -> list[tuple[int, str, str]]:
    """``(number, title, text)`` of the documents of the latest ``<information>`` block in ``messages``."""
    for message in reversed(messages):
        text = message["content"]
        if message["role"] == "user" and "<information>" in text:
            body = text[text.rindex("<information>") + len("<information>"):]
            return parse_information(body.split("</information>")[0])
    return []


def _words(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def _question(messages: Sequence[Message]) -> str:
    """The question of the episode's first prompt."""
    return next((q for message in messages if message["role"] == "user"
                 and (q := prompt_question(message["content"])) is not None), "")


def _shown(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """``(title, text)`` of every document shown so far, in the order shown."""
    return [(title, text) for message in messages if message["role"] == "user"
            for _, title, text in parse_information(message["content"])]


def seen_words(messages: Sequence[Message]) -> set[str]:
    """The words a searcher has read so far: the question and every document shown to it (titles and texts)."""
    seen = _words(_question(messages))
    for title, text in _shown(messages):
        seen |= _words(title) | _words(text)
    return seen


def is_observable(query: str, seen: set[str]) -> bool:
    """Whether ``query`` could be written from what was read: each of its words, but question words and the like,
    is in ``seen``. An oracle query naming an entity the searcher has not yet seen (the answer of the hop it has not
    searched) is not."""
    return _words(query) - _FREE_WORDS <= seen


def span_ranks(retriever: Retriever, spans: Sequence[str], wanted: set[str], k: int) -> list[int | None]:
    """For each of ``spans`` searched as a query, the rank of its first result among ``wanted`` passage ids
    (``None``: none in its ``k`` results): how well each read name serves :class:`ChainTeacher`'s span target."""
    if not spans:
        return []
    return [next((r for r, p in enumerate(found) if p.id in wanted), None) for found in retriever.search(spans, k)]


class ChainTeacher:
    """An oracle searcher for a world question: follows the question's hop chain.

    Each turn it marks the hop passages found in the latest block (only the last ``budget`` hops: the
    passages an equal-budget context can keep, the answer's hop last), stops once every hop is found,
    and otherwise asks the first missing hop's sub-question. Use it as the reply function of a
    :class:`~s3_agents.testing.ScriptedClient`.

    With ``observable=True`` it asks only what a searcher could write from what it has read
    (:func:`is_observable`): the first missing hop whose query's words are all in the question or the documents
    shown so far, and stops when there is none. A chain written from the gold passages can name the second hop's
    entity before any document has mentioned it; a student imitating that learns to guess entities.

    With ``span_retriever`` every query is one of the names it has read, the queries ``SearchConfig(query_spans=True)``
    allows (:func:`~s3_agents.protocol.candidate_spans` of the question and the documents shown so far): the one
    whose ``search_k`` results from ``span_retriever`` (the episode's retriever) rank a missing hop's passage highest,
    the earliest read on a tie; it stops when no name retrieves one. This supervises the choice among read names
    that a span-constrained searcher makes, with the chain's passages as the only labels.

    Args:
        question: A world question (``chain`` of ``{"query", "passage_id"}``).
        passages: The world's passages by id.
        config: The loop's settings (``max_select``, ``search_k``).
        budget: Context documents the teacher aims to fill (naive RAG's k).
        observable: Ask only queries written from what was read.
        span_retriever: Ask the read name that retrieves a missing hop (the episode's retriever).

    Example:
        >>> q = world.questions[0]
        >>> teacher = ChainTeacher(q, {p.id: p for p in world.passages}, SearchConfig())    # doctest: +SKIP
        >>> S3Searcher(ScriptedClient(teacher), retriever).search(q["question"])           # doctest: +SKIP
    """

    def __init__(self, question: dict[str, Any], passages: dict[str, Passage], config: SearchConfig, *,
                 budget: int = 3, observable: bool = False, span_retriever: Retriever | None = None) -> None:
        if span_retriever is not None and config.new_results:
            raise ValueError("span_retriever scores each name on a search's plain results: it needs "
                             "new_results=False")
        self.chain = list(question["chain"])
        self.observable = observable
        self.span_retriever = span_retriever
        self.texts = {hop["passage_id"]: passages[hop["passage_id"]].text for hop in self.chain}
        self.keep = {hop["passage_id"] for hop in self.chain[-budget:]}
        self.config = config
        self.found: set[str] = set()

    def __call__(self, messages: Sequence[Message]) -> str:
        picked: list[int] = []
        for number, _, shown in _latest(messages):
            for pid, text in self.texts.items():
                if text == shown and pid not in self.found:
                    self.found.add(pid)
                    if pid in self.keep and len(picked) < self.config.max_select:
                        picked.append(number)
        select = f"<important_info>[{', '.join(map(str, picked))}]</important_info>\n" if picked else ""
        missing = [hop for hop in self.chain if hop["passage_id"] not in self.found]
        if missing and self.observable:
            seen = seen_words(messages)
            missing = [hop for hop in missing if is_observable(hop["query"], seen)]
        if self.span_retriever is not None:
            query = self._span(self.span_retriever, messages, missing)
        else:
            query = missing[0]["query"].replace('"', "'") if missing else None
        if query is None:
            return select + "<search_complete>True</search_complete>"
        return select + f'<search_complete>False</search_complete>\n<query>{{"query": "{query}"}}</query>'

    def _span(self, retriever: Retriever, messages: Sequence[Message], missing: Sequence[dict[str, Any]]) -> str | None:
        """The read name whose results rank a missing kept hop's passage highest (``None``: no name finds one)."""
        wanted = {hop["passage_id"] for hop in missing} & self.keep
        spans = candidate_spans(_question(messages), _shown(messages)) if wanted else []
        if not spans:
            return None
        best: tuple[int, str] | None = None
        for span, rank in zip(spans, span_ranks(retriever, spans, wanted, self.config.search_k)):
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, span)
        return best[1] if best else None


class ReplayServer:
    """verl's ``generate`` answering with given turns: each text tokenised, as a model would have written it.

    A turn cut by a stop string (``</query>``) ends there, like vLLM with ``include_stop_str_in_output``;
    any other turn ends with the end-of-turn token, which the model writes itself.
    """

    def __init__(self, tokenizer: Any, turns: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.turns = list(turns)
        self.end = turn_closing_ids(tokenizer)[0]
        self.prompts: list[list[int]] = []
        """The prompt ids of each call, in order."""
        self.sampling_params: list[dict[str, Any]] = []
        """The sampling parameters of each call, in order (the grammar of a constrained turn among them)."""

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        self.prompts.append(list(prompt_ids))
        self.sampling_params.append(dict(sampling_params))
        if not self.turns:
            raise RuntimeError("ReplayServer ran out of turns: the replayed episode diverged from the recorded one")
        text = self.turns.pop(0)
        stop = next((s for s in sampling_params.get("stop") or [] if s in text), None)
        if stop:
            text = text[:text.index(stop) + len(stop)]
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        ids = ids if stop else ids + [self.end]
        return TokenOutput(token_ids=ids[:sampling_params.get("max_tokens", len(ids))])


async def replay(tokenizer: Any, retriever: Retriever, question: str, outputs: Sequence[str], answers: Sequence[str],
                 *, config: SearchConfig, source: str, response_length: int = 4096) -> Trajectory:
    """Run recorded turns through the ``s3_searcher`` agent loop: the ids and mask PPO would train on."""
    loop = S3AgentLoop.standalone(ReplayServer(tokenizer, outputs), tokenizer, retriever=retriever,
                                  response_length=response_length, search=config.name, initial_k=config.initial_k,
                                  max_turn_tokens=config.max_new_tokens, max_context_docs=config.max_context_docs)
    out = await loop.run({}, raw_prompt=[{"role": "user", "content": question}])
    context = [Passage(id=d["id"], title=d["title"], text=d["text"]) for d in out.extra_fields["s3_context"]]
    return Trajectory(question=question, prompt_ids=list(out.prompt_ids), response_ids=list(out.response_ids),
                      response_mask=list(out.response_mask), outputs=list(loop.last_state.get("outputs", [])),
                      source=source, answer_in_context=bool(answer_in_context(context, answers)))


async def chain_trajectories(tokenizer: Any, retriever: Retriever, questions: Sequence[dict[str, Any]],
                             passages: dict[str, Passage], config: SearchConfig, *, budget: int = 3,
                             observable: bool = False, spans: bool = False, keep_failed: bool = False,
                             progress: bool = True) -> list[Trajectory]:
    """Trajectories of :class:`ChainTeacher` on world questions (kept when the final context holds the answer;
    ``observable``: the teacher asks only what it has read; ``spans``: only the read name that retrieves a missing
    hop, through ``retriever``)."""
    from tqdm.auto import tqdm

    from s3_agents.searcher import S3Searcher
    from s3_agents.testing import ScriptedClient

    out = []
    for q in tqdm(questions, desc="chain trajectories", disable=not progress):
        teacher = ChainTeacher(q, passages, config, budget=budget, observable=observable,
                               span_retriever=retriever if spans else None)
        searcher = S3Searcher(ScriptedClient(teacher), retriever, config)
        state = await searcher.asearch(q["question"])
        found = answer_in_context(state["context"], q["answers"])
        if found or keep_failed:
            out.append(await replay(tokenizer, retriever, q["question"], state["outputs"], q["answers"],
                                    config=config, source="chain"))
    return out


async def teacher_trajectories(tokenizer: Any, retriever: Retriever, questions: Sequence[Any], teacher: Any,
                               config: SearchConfig, *, progress: bool = True) -> list[Trajectory]:
    """Trajectories of a teacher policy (any :class:`~s3_agents.llm.ChatClient`, e.g. an OpenAI-compatible
    endpoint), kept when the final context holds a gold answer."""
    from tqdm.auto import tqdm

    from s3_agents.searcher import S3Searcher

    searcher = S3Searcher(teacher, retriever, config)
    out = []
    for q in tqdm(questions, desc="teacher trajectories", disable=not progress):
        question, answers = _qa(q)
        state = await searcher.asearch(question)
        if answer_in_context(state["context"], answers):
            out.append(await replay(tokenizer, retriever, question, state["outputs"], answers, config=config,
                                    source="teacher"))
    return out


async def best_of_k_trajectories(loop: Any, rows: Sequence[dict[str, Any]], score: Any, *, k: int = 4,
                                 sampling: dict[str, Any] | None = None, progress: bool = True) -> list[Trajectory]:
    """Rejection sampling: ``k`` episodes of the model itself per row, the best kept if its reward is positive.

    Args:
        loop: An ``s3_searcher`` agent loop over the model (e.g. ``S3AgentLoop.standalone(TransformersServer(...))``).
        rows: verl rows (``s3 train prepare``).
        score: ``async (row, extra_fields) -> float``, e.g. Gain Beyond RAG through
            ``s3_agents.training.reward.compute_score``.
        k: Samples per question.
        sampling: Sampling parameters (default: temperature 1.0).
    """
    from tqdm.auto import tqdm

    out = []
    for row in tqdm(rows, desc=f"best-of-{k} trajectories", disable=not progress):
        best, best_score = None, 0.0
        for _ in range(k):
            output = await loop.run(dict(sampling or {"temperature": 1.0}), **row)
            value = float(await score(row, output.extra_fields))
            if value > best_score:
                best, best_score = output, value
        if best is not None:
            truth = row["reward_model"]["ground_truth"]
            context = [Passage(id=d["id"], title=d["title"], text=d["text"]) for d in best.extra_fields["s3_context"]]
            out.append(Trajectory(question=best.extra_fields["s3_question"], prompt_ids=list(best.prompt_ids),
                                  response_ids=list(best.response_ids), response_mask=list(best.response_mask),
                                  outputs=[], source="self",
                                  answer_in_context=bool(answer_in_context(context, list(truth["target"])))))
    return out


def _qa(item: Any) -> tuple[str, list[str]]:
    if isinstance(item, dict):
        return str(item["question"]), [str(a) for a in item["answers"]]
    return item.question, list(item.answers)


def write_trajectories(trajectories: Sequence[Trajectory], path: str | Path) -> Path:
    """Save trajectories as JSONL (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for t in trajectories:
            handle.write(json.dumps(t.to_record(), ensure_ascii=False) + "\n")
    return path


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Trajectories saved by :func:`write_trajectories`; a malformed line names the file and line."""
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                out.append(Trajectory(**json.loads(line)))
            except (ValueError, TypeError) as err:
                raise DataFileError(path, line_no, f"not a trajectory ({err})") from err
    return out
