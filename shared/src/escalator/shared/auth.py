"""API-key authentication with scopes.

Keys are configured as SHA-256 digests (``ESCALATOR_API_KEYS``) plus an optional
bootstrap admin key (``ESCALATOR_API_KEY``), so every replica of every service accepts
the same keys without a shared table, and rotating a key is a config change. The
``admin`` scope grants every scope.
"""

from __future__ import annotations

import sys
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from escalator.shared.problems import Problem
from escalator.shared.settings import ApiKeySpec, hash_api_key

_bearer = HTTPBearer(auto_error=False, description="An Escalator API key.")


def require(scope: str) -> Any:
    """A dependency that admits only keys holding ``scope`` (or ``admin``)."""

    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiKeySpec:
        if credentials is None:
            raise Problem(401, "Unauthorized", "send 'Authorization: Bearer <api key>'",
                          headers={"WWW-Authenticate": "Bearer"})
        keys: dict[str, ApiKeySpec] = request.app.state.runtime.api_keys
        spec = keys.get(hash_api_key(credentials.credentials))
        if spec is None:
            raise Problem(401, "Unauthorized", "unknown API key",
                          headers={"WWW-Authenticate": "Bearer"})
        if scope not in spec.scopes and "admin" not in spec.scopes:
            raise Problem(403, "Forbidden", f"this API key lacks the '{scope}' scope")
        request.state.api_key_name = spec.name
        return spec

    return Depends(check)


def main() -> None:
    """``python -m escalator.shared.auth KEY`` prints the digest to put in ESCALATOR_API_KEYS."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m escalator.shared.auth <api-key>")
    sys.stdout.write(hash_api_key(sys.argv[1]) + "\n")


if __name__ == "__main__":
    main()
