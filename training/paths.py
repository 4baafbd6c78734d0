"""Where the training package keeps its Hydra configs."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR"]

CONFIG_DIR = Path(__file__).resolve().parent / "config"
"""``training/config``: ``s3_ppo.yaml`` (paper settings), ``s3_ppo_1gpu.yaml`` (one GPU), ``agent_loop.yaml``."""
