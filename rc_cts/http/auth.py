"""HTTP Basic authentication, as the platform sends it when the service is registered with -user/-password."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Optional

from .errors import HttpError

CHALLENGE = {"WWW-Authenticate": 'Basic realm="rc-cts", charset="UTF-8"'}


class BasicAuth:
    """Checks ``Authorization: Basic ...`` in constant time; passwords may contain ':'."""

    def __init__(self, user: str, password: str):
        self._user = user.encode("utf-8")
        self._password = password.encode("utf-8")

    def check(self, header: Optional[str]) -> None:
        """Raise 401 unless the header carries the configured credentials."""
        if not header:
            raise HttpError(401, "authentication required", CHALLENGE)
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            raise HttpError(401, "only Basic authentication is supported", CHALLENGE)
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(401, "malformed Basic credentials", CHALLENGE) from None
        user, sep, password = decoded.partition(b":")
        # Compare both parts always, so timing tells nothing about which one was wrong.
        # Digests, so the lengths tell nothing either.
        ok_user = hmac.compare_digest(hashlib.sha256(user).digest(), hashlib.sha256(self._user).digest())
        ok_password = hmac.compare_digest(hashlib.sha256(password).digest(), hashlib.sha256(self._password).digest())
        if not (sep and ok_user and ok_password):
            raise HttpError(401, "wrong user name or password", CHALLENGE)
