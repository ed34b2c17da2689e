"""Query fingerprints: pt-query-digest's normalisation, so a class here is a class there.

``fingerprint(query)`` turns a statement into its shape (lowercase, literals to ``?``, IN and VALUES lists
collapsed, comments dropped, whitespace folded, ``limit ?``); ``class_id(fingerprint)`` is the upper 64 bits
of its MD5 in hex: the first 16 digits of the "Query ID" pt-query-digest 3.x prints, so a class can be looked
up in either tool's report.

The steps and their order are pt-query-digest's (``QueryRewriter::fingerprint``, run with
``--preserve-embedded-numbers``: ``users_2009`` stays a table name), with these differences, all where
pt-query-digest is demonstrably wrong:

- string literals are read as MySQL reads them: a doubled quote (``'o''neil'``) or an escaped backslash
  (``'c:\\\\'``) stays inside its literal, and comment markers inside a literal are not comments, so one
  statement shape is one class whatever its literals hold (pt-query-digest splits such literals in two);
- trailing whitespace is dropped whole (pt-query-digest keeps all but one newline);
- only ASCII letters are lowercased, as pt-query-digest does on bytes: non-ASCII identifiers keep their
  case and UTF-8 is hashed as the bytes the server wrote, so IDs stay equal to pt-query-digest's.

``postgres=True`` keeps ``"quoted identifiers"`` (PostgreSQL's, not strings; lowercased like the rest, so
``"Users"`` and ``users`` share a class) and turns ``$1`` parameters and ``E'...'`` strings into ``?``.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["fingerprint", "class_id", "checksum", "ShapeCache"]

_A = re.ASCII  # pt-query-digest runs on bytes: \b, \w and \s are ASCII only
_MYSQLDUMP = re.compile(r"SELECT /\*!40001 SQL_NO_CACHE \*/ \* FROM `")
_PT_TOOL = re.compile(r"/\*\w+\.\w+:[0-9]/[0-9]\*/", _A)
_CALL = re.compile(r"\s*(call\s+\S+)\(", re.I | _A)
_USE = re.compile(r"use \S+\n?", re.I | _A)
_MULTI_ROW = re.compile(r"(?:INSERT|REPLACE)(?: IGNORE)?\s+INTO.+?VALUES\s*\(", re.I | re.S | _A)
_NEXT_ROW = re.compile(r"\)\s*,\s*\(")
# Literals, quoted identifiers and comments in one left-to-right scan, so each is read in its context.
_SINGLE = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'?"  # MySQL: '' and \' stay inside; unterminated runs to the end
_DOUBLE = r'"[^"\\]*(?:(?:\\.|"")[^"\\]*)*"?'
_TOKENS_MYSQL = re.compile(_SINGLE + "|" + _DOUBLE + r"|`[^`]*`?|/\*[^!].*?(?:\*/|\Z)|(?:--|\#)[^\r\n]*", re.S)
_TOKENS_PG = re.compile(
    r"""[Ee]'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'?|'[^']*(?:''[^']*)*'?|"[^"]*"?|\$\d+|/\*.*?(?:\*/|\Z)|--[^\r\n]*""",
    re.S,
)
_STRINGS_MYSQL = re.compile(_SINGLE + "|" + _DOUBLE, re.S)
_COMMENT_OR_QUOTE = re.compile(r"""['"`#]|/\*|--|\$\d""")
_BOOLEAN = re.compile(r"\bfalse\b|\btrue\b", re.I | _A)
_NUMBER = re.compile(r"\b[0-9+-][0-9a-f.xb+-]*", _A)
_SIGNED = re.compile(r"[xb.+-]\?")
_SPACE = re.compile(r"[ \n\t\r\f]+")
_NULL = re.compile(r"\bnull\b", _A)
_DIGITS = re.compile(r"(?<![0-9A-Za-z_])[0-9]+")  # digit runs at a word start: always inside a number
_LIST = re.compile(r"\b(in|values?)(?:[\s,]*\([\s?,]*\))+", _A)
_LIST_HINT = re.compile(r"\([\s?,]*\)", _A)  # a list of literals: starts with a "(", found by a fast scan
_UNION = re.compile(r"\b(select\s.*?)(?:(\sunion(?:\sall)?)\s\1)+", _A)
_LIMIT = re.compile(r"\blimit \?(?:, ?\?| offset \?)?", _A)
_ORDER_BY = re.compile(r"\border by ", _A)
_ASC = re.compile(r"\s+asc", _A)  # pt-query-digest's (.+?)\s+ASC from \G, without its quadratic rescans
_UNION_SPLIT = re.compile(r"\sunion(?:\sall)?\s", _A)
_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def fingerprint(query: str, postgres: bool = False) -> str:
    """The shape of ``query``: what stays when the values are taken out."""
    if "/*" in query:
        if _MYSQLDUMP.match(query):
            return "mysqldump"
        if _PT_TOOL.search(query):
            return "percona-toolkit"
    if query.startswith("administrator command: "):
        return query
    first = query[:1]  # each pattern below can only match at a given first letter: skip the others fast
    if first in "cC" or first.isspace():
        call = _CALL.match(query)
        if call:
            return _lower(call.group(1))
    if postgres:
        if _COMMENT_OR_QUOTE.search(query):
            query = _TOKENS_PG.sub(_token_pg, query)
    elif "/*" in query or "--" in query or "#" in query or "`" in query:
        query = _TOKENS_MYSQL.sub(_token, query)
    elif "'" in query or '"' in query:
        query = _STRINGS_MYSQL.sub("?", query)  # the common case, without a Python call per literal
    first = query[:1]
    if first in "uU" and _USE.fullmatch(query):
        return "use ?"
    if first in "iIrR":
        multi = _MULTI_ROW.match(query)
        if multi:
            row_end = _NEXT_ROW.search(query, multi.end())
            if row_end:
                query = query[: row_end.start() + 1]
    if "rue" in query or "RUE" in query or "alse" in query or "ALSE" in query:
        query = _BOOLEAN.sub("?", query)
    query = _SIGNED.sub("?", _NUMBER.sub("?", query))
    folds = "  " in query or "\n" in query or "\t" in query or "\r" in query or "\f" in query
    query = _lower(_SPACE.sub(" ", query).strip() if folds else query.strip())
    if "null" in query:
        query = _NULL.sub("?", query)
    if "(" in query and _LIST_HINT.search(query):
        query = _LIST.sub(r"\1(?+)", query)
    if "union" in query and _repeated_union(query):
        query = _UNION.sub(r"\1 /*repeat\2*/", query)
    if "limit ?" in query:
        query = _LIMIT.sub("limit ?", query, count=1)
    if "asc" in query:
        order = _ORDER_BY.search(query)
        if order:
            query = query[: order.end()] + _ASC.sub("", query[order.end():])
    return query


class ShapeCache:
    """:func:`fingerprint`, remembered by the statement with its values masked.

    Most statements of a log differ from an earlier one only in their literals. The key is the statement
    with its strings (and, for PostgreSQL, comments and ``$n``) turned into ``?``, fingerprint's own first
    step, and each run of digits not preceded by a letter, digit or ``_`` turned into ``0``: such a run
    always lies inside a number that fingerprint turns into ``?`` (the run starts at a word boundary, and
    fingerprint's number pattern covers every digit), so two statements with the same key have the same
    fingerprint. Statements where digits can be kept verbatim bypass the cache: backquoted and PostgreSQL's
    double-quoted identifiers, MySQL comments (``/*!40001``), ``CALL`` and administrator commands.
    """

    def __init__(self, size: int = 4096, max_key: int = 1024) -> None:
        self.size = size
        self.max_key = max_key
        self._cache: dict[str, str] = {}
        self._cache_pg: dict[str, str] = {}

    def __call__(self, query: str, postgres: bool = False) -> str:
        first = query[:1]
        if "/*" in query or first in "cCaA" or first.isspace():
            return fingerprint(query, postgres)
        if postgres:
            if '"' in query:
                return fingerprint(query, True)
            masked = _TOKENS_PG.sub(_token_pg, query) if _COMMENT_OR_QUOTE.search(query) else query
            cache = self._cache_pg
        else:
            if "--" in query or "#" in query or "`" in query:
                return fingerprint(query)
            masked = _STRINGS_MYSQL.sub("?", query) if "'" in query or '"' in query else query
            cache = self._cache
        key = _DIGITS.sub("0", masked)
        fp = cache.get(key)
        if fp is None:
            fp = fingerprint(masked, postgres)  # the same as fingerprint(query): its first step is done
            if len(key) <= self.max_key:
                if len(cache) >= self.size:
                    cache.clear()
                cache[key] = fp
        return fp


def checksum(fp: str) -> str:
    """pt-query-digest's "Query ID": the MD5 of the fingerprint, upper-case hex (32 digits)."""
    return hashlib.md5(fp.encode("utf-8", "surrogateescape")).hexdigest().upper()


def class_id(fp: str) -> str:
    """A stable 16-digit class id: the upper 64 bits of :func:`checksum`."""
    return hashlib.md5(fp.encode("utf-8", "surrogateescape")).hexdigest()[:16].upper()


def _repeated_union(query: str) -> bool:
    """Whether a union's next select repeats the previous one: the only case the (backtracking, quadratic
    on long unions of different selects) union collapse can apply to, checked in linear time."""
    parts = _UNION_SPLIT.split(query)
    for before, after in zip(parts, parts[1:]):
        if after.startswith("select"):
            at = before.find("select")
            while at != -1:
                if after.startswith(before[at:]):
                    return True
                at = before.find("select", at + 1)
    return False


def _token(match: re.Match[str]) -> str:
    text = match.group()
    first = text[0]
    if first == "'" or first == '"':
        return "?"
    if first == "`":
        return text
    return ""  # a comment (a /*! version comment never matches: it is SQL)


def _token_pg(match: re.Match[str]) -> str:
    text = match.group()
    first = text[0]
    if first == '"':
        return text
    if first == "/" or first == "-":
        return ""
    return "?"


def _lower(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_LOWER)
