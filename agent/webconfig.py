"""``server.web_config_file``: TLS and basic auth on the HTTP listener, in the Prometheus exporter-toolkit format.

The same file the exporters dbwatch replaces take with ``--web.config.file``::

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file's directory
      key_file: server.key
      client_ca_file: ca.crt           # optional: clients must present a certificate signed by it ...
      client_auth_type: RequireAndVerifyClientCert   # ... or VerifyClientCertIfGiven
      min_version: TLS12               # TLS10 .. TLS13; TLS12 by default
    basic_auth_users:
      prometheus: $2y$10$...           # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')

Errors name the key (``tls_server_config.cert_file: cannot read ...``) and never quote a hash. Keys of the
toolkit that Python's ``ssl`` cannot honour (``cipher_suites``, ``curve_preferences``, client auth types that
request a certificate without verifying it) are rejected rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

__all__ = ["BasicAuth", "WebConfig", "WebConfigError", "load_web_config"]

_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
_UNSUPPORTED_TLS = {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "cert", "key",
                    "client_allowed_sans"}
_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
             "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
#: bcrypt reads at most 72 bytes of a password; the bcrypt module raises on longer ones
BCRYPT_MAX_PASSWORD = 72
_BCRYPT = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")


class WebConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            ctx.load_verify_locations(cafile=self.client_ca_file)
        ctx.verify_mode = self.client_auth
        return ctx


@dataclass(frozen=True)
class WebConfig:
    tls: TlsSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context() if self.tls else None

    def basic_auth(self) -> "BasicAuth | None":
        return BasicAuth(self.users) if self.users else None


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, off the event loop, remembering good answers.

    bcrypt is slow on purpose (tens of ms at cost 10); a scraper sends the same credentials every time, so
    a success is remembered by a keyed digest of user and password (never the password itself), as the
    exporter-toolkit does. An unknown user costs a bcrypt check too, so timing does not tell users apart.
    """

    CACHE_SIZE = 64

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._key = os.urandom(32)
        self._good: dict[bytes, None] = {}
        self._dummy = bcrypt.hashpw(b"dbwatch", bcrypt.gensalt(rounds=10))

    async def check(self, header: str | None) -> bool:
        credentials = _parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        token = hmac.new(self._key, user + b"\0" + password, hashlib.sha256).digest()
        if token in self._good:
            return True
        hashed = self._users.get(user.decode("utf-8", "replace"))
        if len(password) > BCRYPT_MAX_PASSWORD:
            # bcrypt refuses such a password (ValueError), as Go's bcrypt does for the exporter-toolkit: it can
            # match no hash. The dummy check on its first 72 bytes keeps the answer as slow as any other refusal.
            await asyncio.to_thread(bcrypt.checkpw, password[:BCRYPT_MAX_PASSWORD], self._dummy)
            return False
        ok = await asyncio.to_thread(bcrypt.checkpw, password, hashed or self._dummy)
        if ok and hashed is not None:
            if len(self._good) >= self.CACHE_SIZE:
                self._good.pop(next(iter(self._good)))
            self._good[token] = None
            return True
        return False


def _parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and check the file; raises :class:`WebConfigError` with one line per problem."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError([f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise WebConfigError([f"{where}not valid YAML"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WebConfigError(["(top level): expected a mapping (tls_server_config, basic_auth_users)"])
    problems = [f"{key}: unknown key (expected one of {', '.join(sorted(_TOP_KEYS))})"
                for key in raw if key not in _TOP_KEYS]
    http = raw.get("http_server_config") or {}
    if not isinstance(http, dict) or set(http) - {"http2"}:
        problems.append("http_server_config: only http2 is understood (dbwatch serves HTTP/1.1)")
    tls = _tls(raw.get("tls_server_config"), source.parent, problems)
    users = _users(raw.get("basic_auth_users"), problems)
    if problems:
        raise WebConfigError(problems)
    if tls is not None:
        try:
            tls.context()
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError([f"tls_server_config: the certificate, key or CA do not load: {exc}"]) from None
    return WebConfig(tls=tls, users=users)


def _tls(raw: Any, base: Path, problems: list[str]) -> TlsSettings | None:
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        problems.append("tls_server_config: expected a mapping (cert_file, key_file, ...)")
        return None
    where = "tls_server_config"
    for key in raw:
        if key in _UNSUPPORTED_TLS:
            problems.append(f"{where}.{key}: not supported by dbwatch (Python's ssl module); remove it")
        elif key not in _TLS_KEYS:
            problems.append(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(_TLS_KEYS))})")
    files: dict[str, Path | None] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = raw.get(key)
        if value in (None, ""):
            files[key] = None
            if key != "client_ca_file":
                problems.append(f"{where}.{key}: required when tls_server_config is given")
            continue
        if not isinstance(value, str):
            problems.append(f"{where}.{key}: expected a file path, got {value!r}")
            files[key] = None
            continue
        file = Path(value) if os.path.isabs(value) else base / value
        if not os.access(file, os.R_OK) or not file.is_file():
            problems.append(f"{where}.{key}: cannot read {file}")
        files[key] = file
    auth_name = raw.get("client_auth_type") or "NoClientCert"
    if auth_name in ("RequestClientCert", "RequireAnyClientCert"):
        problems.append(f"{where}.client_auth_type: {auth_name} (a certificate requested but not verified) is not "
                        "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    elif auth_name not in _CLIENT_AUTH:
        problems.append(f"{where}.client_auth_type: expected one of {', '.join(_CLIENT_AUTH)}, got {auth_name!r}")
    client_auth = _CLIENT_AUTH.get(auth_name, ssl.CERT_NONE)
    if files.get("client_ca_file") and client_auth == ssl.CERT_NONE:
        problems.append(f"{where}.client_auth_type: client_ca_file is set, so expected VerifyClientCertIfGiven or "
                        "RequireAndVerifyClientCert")
    if client_auth != ssl.CERT_NONE and not raw.get("client_ca_file"):
        problems.append(f"{where}.client_ca_file: required by client_auth_type {auth_name}")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", None)):
        value = raw.get(key, default)
        if value is not None and value not in _VERSIONS:
            problems.append(f"{where}.{key}: expected one of {', '.join(_VERSIONS)}, got {value!r}")
        versions[key] = _VERSIONS.get(value) if value else None
    if problems or files["cert_file"] is None or files["key_file"] is None:
        return None
    return TlsSettings(cert_file=files["cert_file"], key_file=files["key_file"],
                       client_ca_file=files["client_ca_file"], client_auth=client_auth,
                       min_version=versions["min_version"] or ssl.TLSVersion.TLSv1_2,
                       max_version=versions["max_version"])


def _users(raw: Any, problems: list[str]) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("basic_auth_users: expected a mapping of user name to bcrypt hash")
        return {}
    users = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"basic_auth_users: expected user names without ':', got {user!r}")
        elif not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            # the value is never quoted: it may be a password pasted by mistake
            problems.append(f"basic_auth_users.{user}: expected a bcrypt hash like $2y$10$... (60 characters); "
                            "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'")
        else:
            users[user] = hashed.encode("ascii")
    return users
