"""What the migrations collectors of both engines share: a statement made fit for a label."""

from __future__ import annotations

import re

__all__ = ["statement_label"]

# A quoted literal may hold anything (a password in CREATE USER ... IDENTIFIED BY, a row's data): labels
# never carry it. Doubled quotes and backslash escapes stay inside the literal.
_LITERAL = re.compile(r"'(?:[^'\\]|''|\\.)*'", re.S)
_SPACE = re.compile(r"\s+")


def statement_label(query: str, length: int) -> str:
    """``query`` on one line, string literals as ``'?'``, at most ``length`` characters."""
    text = _SPACE.sub(" ", _LITERAL.sub("'?'", query or "")).strip()
    return text if len(text) <= length else text[: max(0, length - 1)] + "…"
