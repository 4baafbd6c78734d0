"""Training of s3 searchers with verl PPO (``pip install "s3-agents[train]"``).

The ``training/`` folder of the repository, installed as ``s3_agents.training``. It depends on the core
``s3_agents`` package; the core never imports it, and verl / vLLM are imported only inside it. Modules (import
them directly; this ``__init__`` stays light so that ``s3 train --help`` starts fast):

* ``s3_agents.training.agent_loop``: verl agent loop ``s3_searcher`` running the LangGraph search graph.
* ``s3_agents.training.policy``: ``VerlPolicy``, the graph's policy over verl's token-in/token-out server
  (state masking).
* ``s3_agents.training.reward``: ``compute_score``, the Gain-Beyond-RAG reward for ``reward.custom_reward_function``.
* ``s3_agents.training.data``: QA JSONL to verl parquet, the RAG-fails filter.
* ``s3_agents.training.launch``: presets, preflight checks, ``python -m verl.trainer.main_ppo``.
* ``s3_agents.training.export``: verl checkpoints to a Hugging Face folder.
* ``s3_agents.training.ppo`` and ``s3_agents.training.local_server``: PPO steps with verl's ``core_algos`` on a
  CPU.
* ``s3_agents.training.cli``: ``s3 train prepare | check | run | export``.
"""

__all__: list[str] = []
