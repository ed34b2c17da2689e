"""Logging: one line per event, as text or JSON lines, with the target's name and no secrets.

Callers pass the target as ``extra={"target": name}``; every formatter prints it. A filter redacts what
looks like a password in a DSN or a ``password=`` pair, as a last line of defence: messages are written
not to hold secrets in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_REDACTIONS = (
    (re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|routing_key)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)"), r"\1\2***"),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        target = getattr(record, "target", None)
        where = f" target={target}" if target else ""
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname.lower():<7} {record.name}{where}: {record.getMessage()}"
        if record.exc_info:
            line += " | " + redact(self.formatException(record.exc_info)).replace("\n", " | ")
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("target", "collector", "receiver", "alert"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries log at INFO about things the agent reports itself (job runs, HTTP access).
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
