"""Integrations of s3-agents with other frameworks (LlamaIndex, LangGraph).

Nothing is imported eagerly: each integration module imports its framework itself and
raises an ``ImportError`` naming the package to install. The core ``s3_agents`` package
never imports from here.
"""

__all__: list[str] = []
