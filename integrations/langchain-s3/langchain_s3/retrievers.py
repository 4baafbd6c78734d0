"""The s3 searcher as a LangChain retriever.

Example:
    >>> from langchain_s3 import S3Retriever                       # doctest: +SKIP
    >>> retriever = S3Retriever(searcher=searcher)                  # doctest: +SKIP
    >>> docs = retriever.invoke("Who founded Seloun Guild?")        # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from s3_agents import Passage, S3Searcher, SearchState

__all__ = ["S3Retriever", "passage_to_document", "episode_documents"]


def passage_to_document(passage: Passage, **metadata: Any) -> Document:
    """A passage as a LangChain ``Document`` (id, title, score in the metadata)."""
    return Document(page_content=passage.text, id=passage.id,
                    metadata={"id": passage.id, "title": passage.title, "score": passage.score, **metadata})


def episode_documents(state: SearchState) -> list[Document]:
    """The passages an episode selected, with its ``queries`` and ``stop_reason`` in each document's metadata."""
    extra = {"queries": list(state["queries"]), "stop_reason": state["stop_reason"]}
    return [passage_to_document(p, **extra) for p in state["context"]]


class S3Retriever(BaseRetriever):
    """LangChain retriever: runs an s3 episode and returns the selected passages as ``Document``s.

    Attributes:
        searcher: The s3 searcher.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: S3Searcher

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return episode_documents(self.searcher.search(query))

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        return episode_documents(await self.searcher.asearch(query))
