"""Training of s3 searchers with verl PPO (``pip install "s3-agents[train]"``).

This package depends on the core ``s3_agents`` package; the core never imports it, and
verl / vLLM are imported only inside it.
"""

__all__: list[str] = []
