"""The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as mongod runs it over saslStart/saslContinue,
for the MongoDB wire-protocol test server (tests/mongowire.py): the real driver's client side must prove
it knows the password, so a wrong one fails as on a real server, with AuthenticationFailed (code 18).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

AUTH_FAILED = {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18, "codeName": "AuthenticationFailed"}


class ScramConversation:
    """One connection's authentication against ``(user, password)``; ``None`` means no user exists."""

    ITERATIONS = 15000

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        self.credentials = credentials
        self.authenticated = False
        self._salt = os.urandom(28)
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._server_signature = b""

    def step(self, command: dict[str, Any]) -> dict[str, Any]:
        """The reply to a saslStart or saslContinue command."""
        if self.credentials is None:
            return dict(AUTH_FAILED)
        user, password = self.credentials
        payload = bytes(command.get("payload", b"")).decode()
        if "saslStart" in command:
            if command.get("mechanism") != "SCRAM-SHA-256":
                return {"ok": 0.0, "code": 334, "codeName": "MechanismUnavailable",
                        "errmsg": f"Received authentication for mechanism {command.get('mechanism')} which is not "
                                  f"enabled"}
            self._client_first_bare = payload.split(",", 2)[2]  # after the GS2 header "n,,"
            fields = dict(p.split("=", 1) for p in self._client_first_bare.split(","))
            if fields.get("n") != user:
                return dict(AUTH_FAILED)
            self._nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
            self._server_first = f"r={self._nonce},s={base64.b64encode(self._salt).decode()},i={self.ITERATIONS}"
            return {"conversationId": 1, "done": False, "payload": self._server_first.encode(), "ok": 1.0}
        if self._server_signature:  # the driver's empty last step, when it did not ask to skip it
            return {"conversationId": 1, "done": True, "payload": b"", "ok": 1.0}
        fields = dict(p.split("=", 1) for p in payload.split(","))
        without_proof = payload.rsplit(",p=", 1)[0]
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), self._salt, self.ITERATIONS)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        recovered = bytes(a ^ b for a, b in zip(base64.b64decode(fields.get("p", "")), signature))
        if fields.get("r") != self._nonce or hashlib.sha256(recovered).digest() != stored_key:
            return dict(AUTH_FAILED)
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        self.authenticated = True
        done = bool((command.get("options") or {}).get("skipEmptyExchange"))
        return {"conversationId": 1, "done": done, "payload": b"v=" + base64.b64encode(self._server_signature),
                "ok": 1.0}
