"""The s3 searcher for LangChain: a retriever and a tool (``pip install langchain-s3``).

Example:
    >>> from langchain_s3 import S3Retriever, s3_search_tool        # doctest: +SKIP
    >>> docs = S3Retriever(searcher=searcher).invoke("Who founded Seloun Guild?")   # doctest: +SKIP

The LangGraph node and RAG graph are in the core (``from s3_agents import s3_search_node, build_rag_graph``):
the searcher is a LangGraph graph already.
"""

from langchain_s3.chat_models import openai_compatible_chat_model
from langchain_s3.retrievers import S3Retriever, episode_documents, passage_to_document
from langchain_s3.tools import s3_search_tool

__all__ = ["S3Retriever", "s3_search_tool", "passage_to_document", "episode_documents", "openai_compatible_chat_model"]
