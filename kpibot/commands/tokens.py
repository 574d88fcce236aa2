"""Signed confirmation tokens: a preview's exact payload, so a confirm cannot be tampered with.

>>> t = sign({"c": "x", "v": 86.0}, b"k")
>>> verify(t, b"k")["v"]
86.0
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


class TokenInvalid(ValueError):
    """The confirmation was altered or does not come from kpibot."""


def sign(payload: dict[str, Any], secret: bytes) -> str:
    body = base64.urlsafe_b64encode(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    mac = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def verify(token: str, secret: bytes) -> dict[str, Any]:
    try:
        body, mac = token.rsplit(".", 1)
    except ValueError:
        raise TokenInvalid("malformed token") from None
    expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, expected):
        raise TokenInvalid("signature mismatch")
    try:
        data = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, json.JSONDecodeError):
        raise TokenInvalid("unreadable token") from None
    if not isinstance(data, dict):
        raise TokenInvalid("unreadable token")
    return data


def digest(token: str) -> str:
    """A short stable id for a token, used as the submission's idempotency key."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]
