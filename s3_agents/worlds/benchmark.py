"""The benchmark world: a larger fictional archipelago with headroom for a searcher.

The demo world (:mod:`s3_agents.worlds.demo`) is small and its passages link back and forth, so naive
top-3 retrieval already holds most answers. This world is built for measuring search:

* facts point one way only: a person's passage names their birth city, never the country; a city's
  passage names its river and country; a career passage names the teacher, never the work. A 2-4 hop
  question names only its first entity, so the answer sits in passages naive retrieval does not reach;
* names are confusable: people share first names and family names, some cities have near-twins
  ("Gritia", "Gritiath"), companies carry family names;
* distractor passages (travel notes, exhibitions, trade routes) mention the question's entities in the
  wrong relation.

Every question carries its ``chain``: one hop per supporting passage, with the sub-question that finds
it once the previous hop's entity is known (``"Where was Kaemia Tritrir born?"``, then ``"Which river
flows through Gritia?"``). The chain is an oracle query sequence (its top-10 recall says the answer is
findable) and the source of warm-start trajectories. Questions are split into train / dev / test with
no question in two splits.

Generate it with ``s3 data world`` or :func:`build_world`; the shipped default
(:func:`default_world_dir`) is ``build_world()`` written by :func:`write_world`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s3_agents.corpus import write_corpus
from s3_agents.errors import DataError
from s3_agents.locks import atomic_path
from s3_agents.types import Passage
from s3_agents.worlds.vocabulary import (
    LANDMARKS,
    PRODUCTS,
    PROFESSIONS,
    SEAS,
    Names,
    article,
    company_passage,
    new_country,
    new_work,
)

__all__ = ["World", "build_world", "write_world", "load_world", "measure_world", "default_world_dir",
           "default_world_retriever", "ShippedWorld", "SPLITS", "QUESTION_TYPES", "HOP_TEMPLATES",
           "uses_world_template"]

SPLITS = ("train", "dev", "test")
"""The question splits, in order."""

QUESTION_TYPES = {
    "river_of_birthplace": 2, "hq_country": 2, "founder_born": 2, "creator_teacher": 2, "patron_birthplace": 2,
    "birth_language": 3, "hq_sea": 3, "teacher_birthplace": 3, "creator_currency": 4, "older_founder_city": 4,
}
"""Question types and their hops (supporting passages)."""

_SPLIT_SHARES = (0.6, 0.2, 0.2)

HOP_TEMPLATES = {
    "born": "Where was {} born?", "city": "Where is {}?", "founder": "Who founded {}?", "maker": "Who made {}?",
    "language": "What language is spoken in {}?", "river": "Where does the {} flow?", "teacher": "Who taught {}?",
    "currency": "What is the currency of {}?",
}
"""The sub-questions of the world's hop chains, by the relation they ask for; the warm start teaches them."""

_TEMPLATE_RE = re.compile("|".join("(?:" + re.escape(t).replace(r"\{\}", ".+") + ")" for t in HOP_TEMPLATES.values()),
                          re.IGNORECASE)


def uses_world_template(query: str) -> bool:
    """Whether a search query is one of the world's hop sub-questions (:data:`HOP_TEMPLATES`) about anything: the
    mark of a searcher that learned the world's phrasing rather than the question in front of it.

    Example:
        >>> uses_world_template("Where is Scotland?"), uses_world_template("Dawn Penn single producer")
        (True, False)
    """
    return _TEMPLATE_RE.fullmatch(" ".join(query.split())) is not None


@dataclass
class World:
    """Passages and questions; each question has ``split``, ``type``, ``hops``, ``supporting_ids`` and ``chain``."""

    passages: list[Passage] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0

    def split(self, name: str) -> list[dict[str, Any]]:
        """The questions of one split (``"train"``, ``"dev"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return [q for q in self.questions if q["split"] == name]

    def sample(self, name: str, n: int | None = None, *, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` questions of a split in a seeded random order (all of them when ``n`` is ``None``).

        A split lists its questions type by type, so its first ``n`` cover only some types; take a sample
        where a subset must stand for the split (a warm start's questions, a limited evaluation).

        Example:
            >>> world = build_world(300, seed=5)
            >>> len(world.sample("test", 10)), world.sample("test", 10) == world.sample("test", 10)
            (10, True)
        """
        questions = self.split(name)
        random.Random(seed).shuffle(questions)
        return questions[:n]


def build_world(passages: int = 2000, *, seed: int = 7) -> World:
    """Generate a benchmark world of about ``passages`` passages.

    Args:
        passages: Target corpus size (the result is within a few percent); at least 200.
        seed: Seed of the generator: the same arguments give the same world.

    Returns:
        The world, questions split 60/20/20 into train / dev / test.

    Example:
        >>> world = build_world(400, seed=1)
        >>> 380 <= len(world.passages) <= 420, sorted({q["split"] for q in world.questions})
        (True, ['dev', 'test', 'train'])
        >>> world.questions[0]["chain"][0]["query"]                    # doctest: +SKIP
        'Where was Kaemia Tritrir born?'
    """
    if passages < 200:
        raise ValueError(f"a world needs at least 200 passages, got {passages}")
    rng = random.Random(seed)
    names = Names(rng)
    world = World(seed=seed)
    n_people = max(40, round(passages / 3.9))
    n_countries, n_rivers = max(5, n_people // 25), max(6, n_people // 14)
    n_cities, n_companies = max(12, n_people // 5), max(8, n_people // 4)

    def add(title: str, text: str) -> str:
        pid = str(len(world.passages) + 1)
        world.passages.append(Passage(id=pid, title=title, text=text))
        return pid

    # 1. Entities. Names are drawn from small pools so that they collide in confusing ways.
    countries = [new_country(names, rng) for _ in range(n_countries)]
    rivers = [{"name": names.word(2) + " River", "source": "Mount " + names.word(2),
               "length": rng.randint(40, 900), "sea": rng.choice(SEAS).removeprefix("the ")} for _ in range(n_rivers)]
    cities: list[dict[str, Any]] = []
    while len(cities) < n_cities:
        base = names.word(rng.choice([2, 3]))
        variants = [base] + ([base + rng.choice(["th", "a", "en"])] if rng.random() < 0.3 else [])
        for name in variants:
            if name in names.used and name != base:
                continue
            names.used.add(name)
            cities.append({"name": name, "country": rng.choice(countries), "river": rng.choice(rivers),
                           "founded": rng.randint(900, 1700), "landmark": rng.choice(LANDMARKS)})
    for country in countries:
        country["capital"] = next((c for c in cities if c["country"] is country), rng.choice(cities))
    firsts = [names.word(2) for _ in range(max(8, n_people // 3))]
    families = [names.word(2) for _ in range(max(8, n_people // 4))]
    people: list[dict[str, Any]] = []
    taken: set[str] = set()
    while len(people) < n_people:
        full = f"{rng.choice(firsts)} {rng.choice(families)}"
        if full in taken:
            continue
        taken.add(full)
        person = {"name": full, "family": full.split()[1], "city": rng.choice(cities),
                  "born": rng.randint(1700, 1900), "profession": PROFESSIONS[len(people) % len(PROFESSIONS)]}
        earlier = [p for p in people if p["born"] < person["born"] - 10]
        person["mentor"] = rng.choice(earlier) if earlier else None
        people.append(person)
    for city in cities:
        city["founder"] = rng.choice(people)
    works = []
    for person in rng.sample(people, n_people // 2):
        works.append(new_work(person, names, rng, cities))
    companies: list[dict[str, Any]] = []
    for founder in rng.sample(people, n_companies):
        name = f"{rng.choice(families)} {rng.choice(['& Sons', 'Works', 'Company', 'Guild', 'Traders'])}"
        if any(c["name"] == name for c in companies):
            continue
        companies.append({"name": name, "founder": founder, "hq": rng.choice(cities), "product": rng.choice(PRODUCTS),
                          "founded": founder["born"] + rng.randint(20, 45)})

    # 2. Passages: each fact points one way (see the module docstring).
    for c in countries:
        c["pid"] = add(c["name"], (
            f"{c['name']} is an island nation of the Archipelago of Veloria. Its capital is {c['capital']['name']}, "
            f"and most of its people speak {c['language']}. The kingdom was unified in {c['founded']}."))
        c["pid_econ"] = add(c["name"], (
            f"The economy of {c['name']} rests on trade across the archipelago. Its national currency is the "
            f"{c['currency']}, minted since the unification."))
    for r in rivers:
        r["pid"] = add(r["name"], (
            f"The {r['name']} rises on the slopes of {r['source']} and runs for {r['length']} kilometres "
            f"before it empties into the {r['sea']}."))
    for c in cities:
        c["pid"] = add(c["name"], (
            f"{c['name']} is a city in {c['country']['name']}, built on the banks of the {c['river']['name']}. "
            f"It is known for its {c['landmark']}."))
        c["pid_hist"] = add(c["name"], (
            f"According to the chronicles, {c['name']} was founded in {c['founded']}; its charter names "
            f"{c['founder']['name']} as patron founder, a title granted long after the first settlement."))
    for p in people:
        p["pid"] = add(p["name"], (
            f"{p['name']} (born {p['born']} in {p['city']['name']}) was {article(p['profession'])} "
            f"{p['profession']} of the archipelago."))
        teacher = f"under {p['mentor']['name']}" if p["mentor"] else "alone, without a teacher"
        p["pid_career"] = add(p["name"], (
            f"{p['name']} studied {teacher} and spent many years travelling between the islands before "
            "settling down to work."))
    for w in works:
        w["pid"] = add(w["name"].removeprefix("the ").capitalize(), (
            f"{w['name'][:1].upper() + w['name'][1:]} is {article(w['kind'])} {w['kind']} completed in "
            f"{w['year']} by {w['creator']['name']}. It is kept in {w['kept']['name']}."))
    for co in companies:
        co["pid"] = add(co["name"], company_passage(co))
    distractors: list[Callable[[], tuple[str, str]]] = [
        lambda: _travel(rng, people, cities), lambda: _exhibition(rng, works, cities, people),
        lambda: _trade(rng, companies, rivers, cities)]
    while len(world.passages) < passages:
        add(*rng.choice(distractors)())

    # 3. Questions, then splits.
    _ask_all(world, rng, people=people, cities=cities, works=works, companies=companies)
    order = list(range(len(world.questions)))
    rng.shuffle(order)
    cut1 = round(len(order) * _SPLIT_SHARES[0])
    cut2 = cut1 + round(len(order) * _SPLIT_SHARES[1])
    for rank, index in enumerate(order):
        world.questions[index]["split"] = "train" if rank < cut1 else "dev" if rank < cut2 else "test"
    return world


def _travel(rng: random.Random, people: list[dict], cities: list[dict]) -> tuple[str, str]:
    p, a, b = rng.choice(people), rng.choice(cities), rng.choice(cities)
    return p["name"], (f"In {rng.randint(1720, 1930)}, {p['name']} travelled from {a['name']} to {b['name']} to "
                       f"see its {b['landmark']}, and wrote letters home about the voyage.")


def _exhibition(rng: random.Random, works: list[dict], cities: list[dict], people: list[dict]) -> tuple[str, str]:
    w, c, p = rng.choice(works), rng.choice(cities), rng.choice(people)
    return w["name"].removeprefix("the ").capitalize(), (
        f"In {rng.randint(1760, 1940)}, {w['name']} was shown in {c['name']}, next to pieces by {p['name']}. "
        "Critics argued for weeks about who had influenced whom.")


def _trade(rng: random.Random, companies: list[dict], rivers: list[dict], cities: list[dict]) -> tuple[str, str]:
    co, r, c = rng.choice(companies), rng.choice(rivers), rng.choice(cities)
    return co["name"], (f"Barges of {co['name']} carry {co['product']} along the {r['name']} to the markets of "
                        f"{c['name']}.")


def _ask_all(world: World, rng: random.Random, *, people: list[dict], cities: list[dict], works: list[dict],
             companies: list[dict]) -> None:
    """Every question type over its entities, each hop with the sub-question that finds its passage."""

    def ask(kind: str, question: str, answer: Any, chain: list[tuple[str, str]]) -> None:
        world.questions.append({
            "id": f"w{len(world.questions) + 1}", "question": question, "answers": [str(answer)], "type": kind,
            "hops": len(chain), "supporting_ids": [pid for _, pid in chain],
            "chain": [{"query": query, "passage_id": pid} for query, pid in chain]})

    def born(p: dict) -> tuple[str, str]:
        return HOP_TEMPLATES["born"].format(p["name"]), p["pid"]

    def city(c: dict) -> tuple[str, str]:
        return HOP_TEMPLATES["city"].format(c["name"]), c["pid"]

    def company(co: dict) -> tuple[str, str]:
        return HOP_TEMPLATES["founder"].format(co["name"]), co["pid"]

    def work(w: dict) -> tuple[str, str]:
        return HOP_TEMPLATES["maker"].format(w["name"]), w["pid"]

    for p in people[0::4]:
        ask("river_of_birthplace", f"Which river flows through the birthplace of {p['name']}?",
            p["city"]["river"]["name"], [born(p), city(p["city"])])
    for p in people[1::4]:
        ask("birth_language", f"What language is spoken in the country where {p['name']} was born?",
            p["city"]["country"]["language"],
            [born(p), city(p["city"]), (HOP_TEMPLATES["language"].format(p["city"]["country"]["name"]),
                                        p["city"]["country"]["pid"])])
    for co in companies[0::3]:
        ask("hq_country", f"In which country does {co['name']} have its headquarters?", co["hq"]["country"]["name"],
            [company(co), city(co["hq"])])
    for co in companies[1::3]:
        ask("founder_born", f"In what year was the founder of {co['name']} born?", co["founder"]["born"],
            [company(co), born(co["founder"])])
    for co in companies[2::3]:
        ask("hq_sea", f"Into which sea does the river of the city where {co['name']} is headquartered flow?",
            co["hq"]["river"]["sea"],
            [company(co), city(co["hq"]), (HOP_TEMPLATES["river"].format(co["hq"]["river"]["name"]),
                                           co["hq"]["river"]["pid"])])
    with_mentor = [w for w in works if w["creator"]["mentor"]]
    for w in with_mentor[0::2]:
        ask("creator_teacher", f"Who taught the creator of {w['name']}?", w["creator"]["mentor"]["name"],
            [work(w), (HOP_TEMPLATES["teacher"].format(w["creator"]["name"]), w["creator"]["pid_career"])])
    for w in with_mentor[1::2]:
        mentor = w["creator"]["mentor"]
        ask("teacher_birthplace", f"Where was the teacher of the creator of {w['name']} born?", mentor["city"]["name"],
            [work(w), (HOP_TEMPLATES["teacher"].format(w["creator"]["name"]), w["creator"]["pid_career"]),
             born(mentor)])
    for w in works[0::2]:
        country = w["creator"]["city"]["country"]
        ask("creator_currency", f"What is the currency of the country where the creator of {w['name']} was born?",
            country["currency"], [work(w), born(w["creator"]), city(w["creator"]["city"]),
                                  (HOP_TEMPLATES["currency"].format(country["name"]), country["pid_econ"])])
    for c in cities[0::2]:
        ask("patron_birthplace", f"Where was the patron founder of {c['name']} born?", c["founder"]["city"]["name"],
            [(HOP_TEMPLATES["founder"].format(c["name"]), c["pid_hist"]), born(c["founder"])])
    pairs = list(zip(companies[0::2], companies[1::2]))
    for a, b in pairs:
        if a["founder"]["born"] == b["founder"]["born"] or a["founder"]["city"] is b["founder"]["city"]:
            continue
        older = a if a["founder"]["born"] < b["founder"]["born"] else b
        ask("older_founder_city", f"Where was the older of the founders of {a['name']} and {b['name']} born?",
            older["founder"]["city"]["name"], [company(a), company(b), born(a["founder"]), born(b["founder"])])
    # Drop questions that say nothing: repeated verbatim, answer named in the question, or (a chance
    # overlap, e.g. a work kept in its creator's birth city) the answer already in the first hop's passage.
    seen: set[str] = set()
    kept = []
    for q in world.questions:
        first = world.passages[int(q["chain"][0]["passage_id"]) - 1].text
        if q["question"] in seen or q["answers"][0] in q["question"] or q["answers"][0] in first:
            continue
        seen.add(q["question"])
        kept.append(q)
    world.questions[:] = kept


def write_world(world: World, directory: str | Path) -> dict[str, Path]:
    """Write ``corpus.jsonl`` (wiki-18 form), ``train.jsonl`` / ``dev.jsonl`` / ``test.jsonl`` and ``world.json``.

    Question lines are plain QA JSONL (``id``, ``question``, ``answers``) plus ``type``, ``hops``,
    ``supporting_ids`` and ``chain``, which :func:`~s3_agents.qa.load_qa` keeps in ``metadata``.

    Returns:
        The paths written, by name (``corpus``, ``train``, ``dev``, ``test``, ``manifest``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"corpus": directory / "corpus.jsonl", "manifest": directory / "world.json"}
    write_corpus(world.passages, paths["corpus"], form="wiki18")
    counts: dict[str, Any] = {}
    for split in SPLITS:
        rows = world.split(split)
        paths[split] = directory / f"{split}.jsonl"
        _write_lines(paths[split], [{k: v for k, v in q.items() if k != "split"} for q in rows])
        counts[split] = {"questions": len(rows), "by_hops": _count(rows, "hops"), "by_type": _count(rows, "type")}
    manifest = {"seed": world.seed, "passages": len(world.passages), "questions": counts}
    _write_lines(paths["manifest"], [manifest], indent=1)
    return paths


def _count(rows: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[str(row[key])] = out.get(str(row[key]), 0) + 1
    return dict(sorted(out.items()))


def _write_lines(path: Path, rows: Sequence[dict[str, Any]], indent: int | None = None) -> None:
    """Write JSON lines (or one indented document) atomically: a temporary file, then rename."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, indent=indent) + "\n")


def load_world(directory: str | Path) -> World:
    """Read a world written by :func:`write_world` (corpus and the three splits).

    Raises:
        FileNotFoundError: If a file is missing (naming it).
        ValueError: For malformed lines (naming the file and line).
    """
    from s3_agents.corpus import load_corpus
    from s3_agents.qa import load_qa

    directory = Path(directory)
    manifest = directory / "world.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"no world in {directory}: {manifest.name} is missing (write one with `s3 data world`)")
    world = World(passages=list(load_corpus(directory / "corpus.jsonl").passages),
                  seed=int(json.loads(manifest.read_text(encoding="utf-8")).get("seed", 0)))
    for split in SPLITS:
        path = directory / f"{split}.jsonl"
        if path.is_file() and not path.read_bytes().strip():
            continue                                          # a split with no question (a tiny world)
        for example in load_qa(path):
            world.questions.append({"id": example.id, "question": example.question, "answers": list(example.answers),
                                    **example.metadata, "split": split})
    return world


def measure_world(world: World, retriever: Any, *, split: str = "test", k: int = 3, oracle_k: int = 10
                  ) -> dict[str, Any]:
    """How much headroom a world leaves a searcher, with a retriever.

    Args:
        world: The world.
        retriever: A :class:`~s3_agents.retrievers.Retriever` over ``world.passages``.
        split: Which questions to measure.
        k: Naive RAG's documents (s3: 3).
        oracle_k: Depth at which each chain query must find its hop's passage.

    Returns:
        ``questions``; ``naive_answer_in_context`` (the answer string is in naive top-``k`` for the raw
        question); ``oracle_hop_recall`` (hops whose passage is in the top-``oracle_k`` of the hop's chain
        query); ``oracle_chain_recall`` (questions with every hop found); ``oracle_answer_in_context`` (the
        answer is in the union of the chain queries' top-``oracle_k``); and the same per question type in
        ``by_type``.

    Example:
        >>> measure_world(world, load_retriever("world-index"))["naive_answer_in_context"]   # doctest: +SKIP
        0.21
    """
    from s3_agents.metrics import answer_in_context

    questions = world.split(split)
    if not questions:
        raise DataError(f"the world has no {split} questions")
    naive = retriever.search([q["question"] for q in questions], k)
    hop_queries = [hop["query"] for q in questions for hop in q["chain"]]
    found = iter(retriever.search(hop_queries, oracle_k))
    rows = []
    for q, top in zip(questions, naive):
        hits = [next(found) for _ in q["chain"]]
        hop_found = [hop["passage_id"] in {p.id for p in hit} for hop, hit in zip(q["chain"], hits)]
        rows.append({"type": q["type"], "naive": answer_in_context(top, q["answers"]),
                     "hops": hop_found, "oracle": answer_in_context([p for hit in hits for p in hit], q["answers"])})

    def summary(selected: list[dict[str, Any]]) -> dict[str, Any]:
        hops = [h for r in selected for h in r["hops"]]
        return {"questions": len(selected),
                "naive_answer_in_context": round(sum(r["naive"] for r in selected) / len(selected), 4),
                "oracle_hop_recall": round(sum(hops) / len(hops), 4),
                "oracle_chain_recall": round(sum(all(r["hops"]) for r in selected) / len(selected), 4),
                "oracle_answer_in_context": round(sum(r["oracle"] for r in selected) / len(selected), 4)}

    out = summary(rows) | {"split": split, "k": k, "oracle_k": oracle_k}
    out["by_type"] = {kind: summary([r for r in rows if r["type"] == kind])
                      for kind in QUESTION_TYPES if any(r["type"] == kind for r in rows)}
    return out


ShippedWorld = Literal["world", "realqa"]
"""The corpora that ship in the package, in the world layout: ``"world"``, the benchmark world (``build_world()``,
2,000 passages), and ``"realqa"``, 30 real HotpotQA dev questions with the 293 Wikipedia paragraphs of their
distractor setting (CC BY-SA 4.0, see its ``ATTRIBUTION.md``; every question in its ``dev`` split)."""


def default_world_dir(name: ShippedWorld = "world") -> Path:
    """A shipped corpus and its question splits (see :data:`ShippedWorld`).

    Example:
        >>> len(load_world(default_world_dir("realqa")).split("dev"))
        30
    """
    from importlib import resources

    if name not in ("world", "realqa"):
        raise ValueError(f"no shipped world {name!r}: choose 'world' or 'realqa'")
    return Path(str(resources.files("s3_agents") / "data" / name))


def default_world_retriever(cache_dir: str | Path | None = None, *, name: ShippedWorld = "world") -> Any:
    """A MiniLM + FAISS index of a shipped corpus, built once (half a minute for the world) and reused.

    Args:
        cache_dir: Where the index lives (default: ``$S3_AGENTS_CACHE`` or ``~/.cache/s3-agents``).
        name: Which corpus (:data:`ShippedWorld`).

    Example:
        >>> retriever = default_world_retriever()                             # doctest: +SKIP
        >>> retriever.search(["Where was Drufe Geipaeth born?"], k=1)[0][0].title  # doctest: +SKIP
    """
    from s3_agents.config import cache_root
    from s3_agents.corpus import load_corpus
    from s3_agents.retrievers import build_index, load_retriever

    root = Path(cache_dir) if cache_dir else cache_root()
    path = root / f"{name}-index"
    if not (path / "CURRENT").is_file():
        build_index(load_corpus(default_world_dir(name) / "corpus.jsonl").passages, path)
    return load_retriever(path)
