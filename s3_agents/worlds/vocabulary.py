"""What the two generated worlds share: the name generator, the pools of professions, works, products,
landmarks and seas, and the entities and passages they write the same way.

Each helper draws from the generator's ``random.Random`` in a fixed order, so a world built from the same
seed is the same world, passage for passage.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["PROFESSIONS", "WORK_KINDS", "PRODUCTS", "LANDMARKS", "SEAS", "Names", "article", "upper_first",
           "new_country", "new_work", "company_passage"]

_ONSETS = ["b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "st", "th", "tr", "vr", "sh", "qu"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia"]
_CODAS = ["", "", "n", "r", "s", "l", "th", "nd", "sk", "m"]
PROFESSIONS = ["inventor", "composer", "painter", "architect", "explorer", "astronomer", "poet"]
WORK_KINDS = {
    "inventor": ("invention", "the {name} engine"),
    "composer": ("symphony", "the {name} Symphony"),
    "painter": ("painting", "{name} at Dusk"),
    "architect": ("bridge", "the {name} Bridge"),
    "explorer": ("chart", "the {name} Chart"),
    "astronomer": ("star catalogue", "the {name} Catalogue"),
    "poet": ("epic poem", "the Song of {name}"),
}
PRODUCTS = ["glass lenses", "sailcloth", "clockwork toys", "salted fish", "copper wire",
             "printing presses", "tea", "porcelain", "rope", "telescopes", "paper", "lamp oil"]
LANDMARKS = ["lighthouse", "bell tower", "salt market", "observatory", "stone harbour",
              "floating garden", "old mint", "library", "amphitheatre", "citadel"]
SEAS = ["the Amber Sea", "the Grey Reach", "the Sea of Lanterns", "the Quiet Gulf"]


def upper_first(text: str) -> str:
    """``text`` with its first letter upper-cased (the rest kept).

    Example:
        >>> upper_first("the Grey Reach")
        'The Grey Reach'
    """
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    """The indefinite article before ``word``.

    Example:
        >>> article("inventor"), article("poet")
        ('an', 'a')
    """
    return "an" if word[:1] in "aeiou" else "a"


class Names:
    """Invented names, never the same one twice (``used`` holds every name given out).

    Example:
        >>> names = Names(random.Random(0))
        >>> a, b = names.word(2), names.word(2)
        >>> a != b and a[0].isupper()
        True
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        while True:
            parts = [self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(syllables)]
            name = ("".join(parts) + self.rng.choice(_CODAS)).capitalize()
            if name not in self.used and 4 <= len(name) <= 11:
                self.used.add(name)
                return name


def new_country(names: Names, rng: random.Random) -> dict[str, Any]:
    """A country: name, currency, language and year of unification."""
    return {"name": names.word(2), "currency": names.word(2).lower(), "language": names.word(2) + "ic",
            "founded": rng.randint(1400, 1750)}


def new_work(person: dict[str, Any], names: Names, rng: random.Random, cities: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """The work of ``person``, of the kind their profession makes, kept in one of ``cities``."""
    kind, pattern = WORK_KINDS[person["profession"]]
    return {"name": pattern.format(name=names.word(2)), "kind": kind, "creator": person,
            "year": person["born"] + rng.randint(22, 50), "kept": rng.choice(cities)}


def company_passage(co: dict[str, Any]) -> str:
    """The passage of a company: what it makes, when and by whom it was founded, where it sits."""
    return (f"{co['name']} is a maker of {co['product']} founded in {co['founded']} by {co['founder']['name']}. "
            f"The firm has its headquarters in {co['hq']['name']}.")
