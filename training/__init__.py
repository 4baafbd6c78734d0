"""Training of s3 searchers with verl PPO (``pip install "s3-agents[train]"``).

This package depends on the core ``s3_agents`` package; the core never imports it, and verl / vLLM
are imported only inside it. Modules (import them directly; this ``__init__`` stays light so that
``s3 train --help`` starts fast):

* ``training.agent_loop``: verl agent loop ``s3_searcher`` running the LangGraph search graph.
* ``training.policy``: ``VerlPolicy``, the graph's policy over verl's token-in/token-out server (state masking).
* ``training.reward``: ``compute_score``, the Gain-Beyond-RAG reward for ``reward.custom_reward_function``.
* ``training.data``: QA JSONL to verl parquet, the RAG-fails filter.
* ``training.launch``: presets, preflight checks, ``python -m verl.trainer.main_ppo``.
* ``training.export``: verl checkpoints to a Hugging Face folder.
* ``training.ppo`` and ``training.local_server``: PPO steps with verl's ``core_algos`` on a CPU.
* ``training.cli``: ``s3 train prepare | check | run | export``.
"""

__all__: list[str] = []
