"""Retrieval server compatible with the s3 / Search-R1 ``POST /retrieve`` API (``s3 serve``).

- :mod:`~s3_agents.server.app`: the FastAPI application, its limits, ``serve``;
- :mod:`~s3_agents.server.scheduler`: fair sharing of the index between concurrent requests;
- :mod:`~s3_agents.server.guards`: body size and read deadline, ``Host`` allow-list.
"""

from s3_agents.config import ServerLimits
from s3_agents.server.app import RetrieveRequest, check_api_key, create_app, serve
from s3_agents.server.guards import LOOPBACK_HOSTS

__all__ = ["LOOPBACK_HOSTS", "ServerLimits", "RetrieveRequest", "create_app", "serve", "check_api_key"]
