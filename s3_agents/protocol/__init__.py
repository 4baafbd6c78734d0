"""The searcher's tag protocol, in one place: what the searcher is told, what it may write, and how what it wrote
is read and answered.

- :mod:`~s3_agents.protocol.prompt`: the instructions that teach the tags, and the marker line before the
  episode;
- :mod:`~s3_agents.protocol.actions`: parsing a turn into an :class:`~s3_agents.protocol.actions.Action`
  (``<important_info>``, ``<search_complete>``, ``<query>``) and formatting what the environment inserts
  (``<information>`` blocks, the invalid-action feedback, the s3 reference code's observation texts);
- :mod:`~s3_agents.protocol.grammar`: the same actions as a GBNF grammar, for constrained decoding;
- :mod:`~s3_agents.protocol.spans`: the names a searcher has read, the queries ``query_spans`` allows.

Running a model under that grammar (:mod:`s3_agents.llm.constrained`) and the reference code's token layout
(:mod:`s3_agents.llm.reference`) are LLM clients, one layer up: they use this package and stay beside the other
clients.
"""

from s3_agents.protocol.actions import (
    INVALID_ACTION_FEEDBACK,
    REFERENCE_FEEDBACK,
    Action,
    Selection,
    format_information,
    format_observation,
    parse_action,
    parse_information,
    parse_selection,
    reference_output,
)
from s3_agents.protocol.grammar import action_grammar
from s3_agents.protocol.prompt import START_MARKER, prompt_question, searcher_prompt
from s3_agents.protocol.spans import candidate_spans

__all__ = ["Action", "parse_action", "parse_selection", "Selection", "format_information", "parse_information",
           "INVALID_ACTION_FEEDBACK", "REFERENCE_FEEDBACK", "format_observation", "reference_output", "action_grammar",
           "START_MARKER", "prompt_question", "searcher_prompt", "candidate_spans"]
