"""The s3 searcher as a LangChain tool, for tool-calling agents (``ToolNode``, ``create_agent``).

Example:
    >>> from langchain_s3 import s3_search_tool                      # doctest: +SKIP
    >>> tool = s3_search_tool(searcher)                              # doctest: +SKIP
    >>> tool.invoke({"question": "Who founded Seloun Guild?"})       # doctest: +SKIP
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.tools import BaseTool, StructuredTool

from langchain_s3.retrievers import episode_documents
from s3_agents import S3Searcher
from s3_agents.prompts import format_context

__all__ = ["s3_search_tool"]

DESCRIPTION = ("Search the knowledge base with a trained search agent that issues several queries and keeps the "
               "useful passages. Input: the full question.")


def s3_search_tool(searcher: S3Searcher, *, name: str = "s3_search", description: str | None = None) -> BaseTool:
    """A tool that runs the searcher and returns the selected passages as text (the documents as artifact).

    Args:
        searcher: The s3 searcher.
        name: The tool's name, as the agent's LLM sees it.
        description: What the LLM is told the tool does (default: a search agent over the knowledge base).
    """

    def run(question: str) -> tuple[str, list[Document]]:
        state = searcher.search(question)
        return format_context(state["context"]), episode_documents(state)

    async def arun(question: str) -> tuple[str, list[Document]]:
        state = await searcher.asearch(question)
        return format_context(state["context"]), episode_documents(state)

    return StructuredTool.from_function(func=run, coroutine=arun, name=name, response_format="content_and_artifact",
                                        description=description or DESCRIPTION)
