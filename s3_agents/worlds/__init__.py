"""The generated fictional worlds: invented on purpose, so that a small LLM cannot answer from memory and only
retrieval (and a good searcher) helps.

- :mod:`~s3_agents.worlds.demo`: the demo corpus and questions shipped in ``s3_agents/data/`` (small; naive
  top-3 retrieval already holds most answers);
- :mod:`~s3_agents.worlds.benchmark`: the benchmark world, built for measuring search (facts that point one
  way, confusable names, distractors, an oracle chain per question, train / dev / test splits);
- :mod:`~s3_agents.worlds.vocabulary`: what the two share (names, pools, the entities and passages they write
  the same way).
"""

from s3_agents.worlds.benchmark import (
    HOP_TEMPLATES,
    QUESTION_TYPES,
    SPLITS,
    ShippedWorld,
    World,
    build_world,
    default_world_dir,
    default_world_retriever,
    load_world,
    measure_world,
    uses_world_template,
    write_world,
)
from s3_agents.worlds.demo import DemoWorld, build_demo_world, write_demo_files

__all__ = ["World", "build_world", "write_world", "load_world", "measure_world", "default_world_dir",
           "default_world_retriever", "ShippedWorld", "SPLITS", "QUESTION_TYPES", "HOP_TEMPLATES",
           "uses_world_template", "DemoWorld", "build_demo_world", "write_demo_files"]
