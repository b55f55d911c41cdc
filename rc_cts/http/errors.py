"""The one exception type that becomes an HTTP error answer with a JSON body."""
from __future__ import annotations

from typing import Dict, Optional


class HttpError(Exception):
    """Answer the request with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
