"""The control plane's HTTP API: ESA OpenAPI 2024-09-10 RPC (signature checks, action registry,
PascalCase wire mapping, one error table) and the snapshot endpoint edges pull from.

Adapters only: every action calls ``certgate.services``; nothing here decides policy.
"""

from certgate.api.app import create_app

__all__ = ["create_app"]
