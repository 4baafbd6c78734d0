"""The s3 search loop as a LangGraph state machine."""

from s3_agents.graph.builder import build_search_graph
from s3_agents.graph.state import Block, SearchContext, SearchInput, SearchState, Segment

__all__ = ["build_search_graph", "SearchContext", "SearchState", "SearchInput", "Block", "Segment"]
