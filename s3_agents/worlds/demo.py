"""The demo corpus: a fictional archipelago, generated deterministically.

The world is invented on purpose: a small LLM cannot answer its questions from memory,
so only retrieval (and a good searcher) helps, which is what s3 measures. Entities are
countries, cities, rivers, people, works and companies; each gets one or two
Wikipedia-style passages. Questions chain facts across passages (1 to 4 hops) and carry
the ids of the passages that support them.

The files shipped in ``s3_agents/data/`` are the output of :func:`write_demo_files`;
``python scripts/make_demo_corpus.py`` writes them again and a test checks they match.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3_agents.corpus import write_corpus
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
    upper_first,
)

__all__ = ["DemoWorld", "build_demo_world", "write_demo_files"]

@dataclass
class DemoWorld:
    """The generated world: passages and questions."""

    passages: list[Passage] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)


def build_demo_world(seed: int = 18) -> DemoWorld:
    """Generate the demo world.

    Args:
        seed: Seed of the generator; the shipped files use the default.

    Returns:
        The passages (about 290) and questions (about 180).

    Example:
        >>> world = build_demo_world()
        >>> len(world.passages) > 200 and len(world.questions) > 100
        True
    """
    rng = random.Random(seed)
    names = Names(rng)
    world = DemoWorld()

    def add(title: str, text: str) -> str:
        pid = str(len(world.passages) + 1)
        world.passages.append(Passage(id=pid, title=title, text=text))
        return pid

    # 1. Raw facts.
    countries = [new_country(names, rng) for _ in range(10)]
    rivers = [{"name": "the " + names.word(2) + " River", "source": "Mount " + names.word(2),
               "length": rng.randint(40, 900), "sea": rng.choice(SEAS)} for _ in range(12)]
    cities = []
    for i in range(36):
        cities.append({"name": names.word(rng.choice([2, 3])), "country": countries[i % 10],
                       "river": rivers[i % 12], "founded": rng.randint(900, 1700),
                       "landmark": rng.choice(LANDMARKS)})
    for country in countries:
        country["capital"] = next(c for c in cities if c["country"] is country)
    people = []
    for i in range(60):
        person = {"name": f"{names.word(2)} {names.word(2)}", "city": rng.choice(cities),
                  "born": rng.randint(1700, 1900), "profession": PROFESSIONS[i % len(PROFESSIONS)]}
        earlier = [p for p in people if p["born"] < person["born"] - 10]
        person["mentor"] = rng.choice(earlier) if earlier else None
        people.append(person)
    for city in cities:
        city["founder"] = rng.choice(people)
    works = []
    for person in people[:30]:
        works.append(new_work(person, names, rng, cities))
        person["work"] = works[-1]
    companies = [{"name": names.word(2) + " " + rng.choice(["& Sons", "Works", "Company", "Guild"]),
                  "founder": people[30 + i], "hq": rng.choice(cities), "product": rng.choice(PRODUCTS),
                  "founded": people[30 + i]["born"] + rng.randint(20, 45)} for i in range(16)]

    # 2. Passages (ids recorded on the entities for the questions' supporting ids).
    for c in countries:
        c["pid"] = add(c["name"], (
            f"{c['name']} is an island nation of the Archipelago of Veloria. Its capital is "
            f"{c['capital']['name']}, and most of its people speak {c['language']}. The kingdom "
            f"was unified in {c['founded']} after a long dispute over fishing rights."))
        c["pid_econ"] = add(c["name"], (
            f"The economy of {c['name']} rests on trade across the archipelago. The national "
            f"currency of {c['name']} is the {c['currency']}, minted in {c['capital']['name']} "
            "since the unification."))
    for r in rivers:
        through = [c["name"] for c in cities if c["river"] is r]
        r["pid"] = add(r["name"].removeprefix("the ").title(), (
            f"{upper_first(r['name'])} rises on the slopes of {r['source']} and runs for "
            f"{r['length']} kilometres before it empties into {r['sea']}. Along its course it "
            f"flows through {', '.join(through[:-1]) + ' and ' + through[-1] if len(through) > 1 else through[0]}."))
    for c in cities:
        c["pid"] = add(c["name"], (
            f"{c['name']} is a city in {c['country']['name']}, built on the banks of "
            f"{c['river']['name']}. It is known for its {c['landmark']}."))
        c["pid_hist"] = add(c["name"], (
            f"According to the city chronicles, {c['name']} was founded in {c['founded']} by "
            f"settlers; the town charter names {c['founder']['name']} as its patron founder, "
            "a title granted long after the first settlement."))
    for p in people:
        p["pid"] = add(p["name"], (
            f"{p['name']} (born {p['born']} in {p['city']['name']}) was {article(p['profession'])} "
            f"{p['profession']} from {p['city']['country']['name']}."))
        career = f"{p['name']} studied "
        career += (f"under the {p['mentor']['profession']} {p['mentor']['name']}" if p["mentor"]
                   else "alone, without a teacher")
        if "work" in p:
            career += (f", and is best remembered for {p['work']['name']}, "
                       f"{article(p['work']['kind'])} {p['work']['kind']}.")
        else:
            career += ", and later turned to commerce."
        p["pid_career"] = add(p["name"], career)
    for w in works:
        w["pid"] = add(upper_first(w["name"].removeprefix("the ")), (
            f"{upper_first(w['name'])} is {article(w['kind'])} {w['kind']} completed in {w['year']} by "
            f"{w['creator']['name']}. Since then it has been kept in {w['kept']['name']}."))
    for co in companies:
        co["pid"] = add(co["name"], company_passage(co))

    # 3. Questions.
    def ask(question: str, answer: Any, hops: int, support: list[str]) -> None:
        world.questions.append({"id": f"q{len(world.questions) + 1}", "question": question,
                                "answers": [str(answer)], "hops": hops,
                                "supporting_ids": list(dict.fromkeys(support))})

    for p in people[::3]:
        ask(f"In which city was {p['name']} born?", p["city"]["name"], 1, [p["pid"]])
    for c in countries:
        ask(f"What is the currency of {c['name']}?", c["currency"], 1, [c["pid_econ"]])
    for p in people[1::3]:
        ask(f"Which river flows through the birthplace of {p['name']}?",
            p["city"]["river"]["name"].removeprefix("the "), 2, [p["pid"], p["city"]["pid"]])
    for co in companies:
        ask(f"In which country does {co['name']} have its headquarters?",
            co["hq"]["country"]["name"], 2, [co["pid"], co["hq"]["pid"]])
        ask(f"In what year was the founder of {co['name']} born?",
            co["founder"]["born"], 2, [co["pid"], co["founder"]["pid"]])
    for w in works:
        if w["creator"]["mentor"]:
            ask(f"Who was the teacher of the creator of {w['name']}?",
                w["creator"]["mentor"]["name"], 2, [w["pid"], w["creator"]["pid_career"]])
        ask(f"What is the currency of the country where the creator of {w['name']} was born?",
            w["creator"]["city"]["country"]["currency"], 4,
            [w["pid"], w["creator"]["pid"], w["creator"]["city"]["pid"],
             w["creator"]["city"]["country"]["pid_econ"]])
    for co in companies[::2]:
        ask(f"Into which sea does the river of the city where {co['name']} is headquartered flow?",
            co["hq"]["river"]["sea"].removeprefix("the "), 3,
            [co["pid"], co["hq"]["pid"], co["hq"]["river"]["pid"]])
    for c in cities[::3]:
        ask(f"Where was the patron founder of {c['name']} born?", c["founder"]["city"]["name"], 2,
            [c["pid_hist"], c["founder"]["pid"]])
    return world


def write_demo_files(directory: str | Path, *, seed: int = 18) -> tuple[Path, Path]:
    """Write ``demo_corpus.jsonl`` (wiki-18 form) and ``demo_questions.jsonl`` to ``directory``.

    Returns:
        The two paths written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    world = build_demo_world(seed)
    corpus_path = directory / "demo_corpus.jsonl"
    questions_path = directory / "demo_questions.jsonl"
    write_corpus(world.passages, corpus_path, form="wiki18")
    with questions_path.open("w", encoding="utf-8") as handle:
        for question in world.questions:
            handle.write(json.dumps(question, ensure_ascii=False) + "\n")
    return corpus_path, questions_path
