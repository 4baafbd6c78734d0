"""``python -m s3_agents`` runs the ``s3`` command line."""

from s3_agents.cli import main

main()
