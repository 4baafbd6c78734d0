"""The s3 searcher as a LangChain retriever and tool (``pip install "s3-agents[langchain]"``).

Example:
    >>> from integrations.langchain import S3LangChainRetriever, s3_search_tool   # doctest: +SKIP
    >>> retriever = S3LangChainRetriever(searcher=searcher)                        # doctest: +SKIP
    >>> docs = retriever.invoke("Who founded Seloun Guild?")                       # doctest: +SKIP
    >>> tool = s3_search_tool(searcher)       # for a tool-calling agent (langchain.agents.create_agent)
"""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import BaseTool, StructuredTool
except ImportError as err:  # pragma: no cover - langchain-core comes with langgraph
    raise ImportError('the LangChain integration needs langchain-core: pip install "s3-agents[langchain]"') from err

from pydantic import ConfigDict

from s3_agents import Passage, S3Searcher
from s3_agents.prompts import format_context

__all__ = ["S3LangChainRetriever", "s3_search_tool", "passage_to_document", "openai_compatible_chat_model"]


def passage_to_document(passage: Passage, **metadata: Any) -> Document:
    """A passage as a LangChain ``Document`` (id, title, score in the metadata)."""
    return Document(page_content=passage.text, id=passage.id,
                    metadata={"id": passage.id, "title": passage.title, "score": passage.score, **metadata})


class S3LangChainRetriever(BaseRetriever):
    """LangChain retriever: runs an s3 episode and returns the selected passages as ``Document``s.

    Attributes:
        searcher: The s3 searcher.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: S3Searcher

    @staticmethod
    def _documents(state: dict[str, Any]) -> list[Document]:
        extra = {"queries": list(state["queries"]), "stop_reason": state["stop_reason"]}
        return [passage_to_document(p, **extra) for p in state["context"]]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(self.searcher.search(query))

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(await self.searcher.asearch(query))


def s3_search_tool(searcher: S3Searcher, *, name: str = "s3_search", description: str | None = None) -> BaseTool:
    """A tool that runs the searcher and returns the selected passages as text (the documents as artifact)."""

    def run(question: str) -> tuple[str, list[Document]]:
        state = searcher.search(question)
        return format_context(state["context"]), S3LangChainRetriever._documents(state)

    async def arun(question: str) -> tuple[str, list[Document]]:
        state = await searcher.asearch(question)
        return format_context(state["context"]), S3LangChainRetriever._documents(state)

    return StructuredTool.from_function(
        func=run, coroutine=arun, name=name, response_format="content_and_artifact",
        description=description or ("Search the knowledge base with a trained search agent that issues several "
                                    "queries and keeps the useful passages. Input: the full question."),
    )


def openai_compatible_chat_model(base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> Any:
    """A LangChain chat model for any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI)."""
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as err:
        raise ImportError('needs langchain-openai: pip install "s3-agents[langchain]"') from err
    kwargs.setdefault("temperature", 0.0)
    return ChatOpenAI(model=model, base_url=base_url, api_key=api_key or "none", **kwargs)
