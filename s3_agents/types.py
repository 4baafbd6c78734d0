"""Plain data shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Passage"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable passage.

    Attributes:
        id: Corpus id, as a string (wiki-18 ids are digits, others may be anything).
        title: Title of the source article; may be empty.
        text: Passage body, without the title.
        score: Retrieval score when the passage comes from a search (higher is better).
    """

    id: str
    title: str
    text: str
    score: float | None = None

    @property
    def contents(self) -> str:
        """The passage in the s3 / Search-R1 corpus form: ``"Title"`` newline text."""
        return f'"{self.title}"\n{self.text}'

    def with_score(self, score: float) -> Passage:
        """A copy of this passage carrying ``score``."""
        return replace(self, score=float(score))

    def to_document(self) -> dict[str, str]:
        """The wiki-18 document dict that s3 / Search-R1 retrieval servers return."""
        return {"id": self.id, "contents": self.contents}

    def to_record(self) -> dict[str, Any]:
        """A ``{id, title, text}`` record (the plain corpus form)."""
        return {"id": self.id, "title": self.title, "text": self.text}
