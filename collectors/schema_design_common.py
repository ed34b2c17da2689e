"""The schema designer's name and value heuristics, shared by the PostgreSQL and MySQL/MariaDB collectors.

Each is deliberately narrow: a finding that fires on a near miss (a float called ``latitude``, a free-text
column with commas in sentences) is worse than one that stays silent.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["AMOUNT_NAME", "INSTANT_NAME", "delimited", "eav_columns", "fk_targets", "low_cardinality",
           "looks_uuid"]

AMOUNT_NAME = re.compile(r"(amount|price|cost|balance|total|fee|salary|revenue|money|payment|charge|tax|"
                         r"discount|refund|wage|paid|due)")
INSTANT_NAME = re.compile(r"(_at$|_ts$|_time$|_timestamp$|^created|^updated|^deleted|^modified|^inserted|"
                          r"^last_|^logged|^occurred)")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_ITEM = re.compile(r"^[\w@.+-]{1,40}$")
_DELIMITERS = (",", ";", "|")
_ENTITY = re.compile(r"^(entity|object|item|record|owner|parent)(_id)?$|_id$")
_ATTRIBUTE = re.compile(r"^(attribute|attr|attribute_name|key|name|property|prop|field|field_name|param)$")
_VALUE = re.compile(r"^(value|val|attribute_value|value_text|string_value|data)$")

#: at most this many distinct values make a column "low cardinality" (an enum or a lookup table)
LOW_CARDINALITY_MAX = 10


def looks_uuid(value: str) -> bool:
    return bool(_UUID.match(value.strip()))


def delimited(samples: Sequence[str]) -> tuple[str, float] | None:
    """``(delimiter, share)`` when at least 60 % of at least five sampled values are two or more short items
    joined by one delimiter with no spaces around it (``red,green,blue``; not ``Hello, world``)."""
    if len(samples) < 5:
        return None
    for delimiter in _DELIMITERS:
        lists = sum(1 for v in samples if delimiter in v and all(_ITEM.match(p) for p in v.split(delimiter)))
        if lists / len(samples) >= 0.6:
            return delimiter, round(lists / len(samples), 3)
    return None


def low_cardinality(mcv: Sequence[str] | None, freqs: Sequence[float] | None, null_frac: float,
                    n_distinct: float) -> tuple[tuple[str, ...], float] | None:
    """``(values, covered)`` when the statistics' most common values cover (nearly) every row and are few."""
    if not mcv or not freqs or len(mcv) < 2 or len(mcv) > LOW_CARDINALITY_MAX:
        return None
    if not 0 < n_distinct <= LOW_CARDINALITY_MAX:  # a negative n_distinct grows with the table: not an enum
        return None
    covered = float(sum(freqs)) + float(null_frac)
    if covered < 0.999 or any(len(v) > 40 for v in mcv):
        return None
    return tuple(sorted(mcv)), round(covered, 4)


def fk_targets(stem: str) -> list[str]:
    """The tables ``<stem>_id`` may name: the stem itself and its plurals."""
    if not stem:
        return []
    out = [stem, stem + "s", stem + "es"]
    if stem.endswith("y"):
        out.append(stem[:-1] + "ies")
    return out


def eav_columns(columns: Sequence[str]) -> tuple[str, str, str] | None:
    """``(entity, attribute, value)`` when a table of at most six columns has one of each."""
    if len(columns) > 6:
        return None
    names = [c.lower() for c in columns]
    entity = next((c for c, n in zip(columns, names) if _ENTITY.search(n) and n != "id"), None)
    attribute = next((c for c, n in zip(columns, names) if _ATTRIBUTE.match(n)), None)
    value = next((c for c, n in zip(columns, names) if _VALUE.match(n)), None)
    if entity and attribute and value:
        return entity, attribute, value
    return None
