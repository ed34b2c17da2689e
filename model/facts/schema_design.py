"""The typed facts the schema designer's collectors (collectors/pg_schema_design.py,
collectors/mysql_schema_design.py) put on a snapshot, for rules/schema_design.py.

Each fact is a column (or table) that matched a pattern *and* what the collector checked against the data
before the rule offers a statement: the orphan count behind a missing foreign key, the bounded scan that saw
no NULL, the share of sampled values that parse as UUIDs. A check the collector skipped (the table is larger
than ``check_rows_limit``) is ``None``, and the rule then offers no statement, only the finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ColumnRef:
    schema: str
    table: str
    column: str
    data_type: str
    rows: int  # the table's estimated rows (reltuples / TABLE_ROWS)
    nullable: bool = True
    #: MySQL/MariaDB: no default, comment or extra beyond auto_increment, so ``MODIFY col <type>`` (which
    #: restates the whole definition) loses nothing; a rule offers MODIFY only then
    plain: bool = True


@dataclass(frozen=True, slots=True)
class ForeignKeyGap:
    """``<name>_id`` with no foreign key, where a table called ``<name>`` (or its plural) has a unique key the
    column's type can reference. ``orphans``: rows whose value has no parent (``None``: not counted)."""

    column: ColumnRef
    ref_schema: str
    ref_table: str
    ref_column: str
    orphans: int | None


@dataclass(frozen=True, slots=True)
class NeverNull:
    """A nullable column the statistics saw no NULL in (``null_frac`` 0 on an analyzed table); ``checked``:
    a scan of the whole table found none either (``None``: the table was too large to scan)."""

    column: ColumnRef
    checked: bool | None


@dataclass(frozen=True, slots=True)
class MoneyColumn:
    """A float column named like money; ``lossy``: values ``DECIMAL(14,2)`` would change (more than two
    decimals, or 10^12 and over), counted where the conversion needs a scale (MySQL; ``None``: not counted)."""

    column: ColumnRef
    lossy: int | None = None


@dataclass(frozen=True, slots=True)
class LowCardinality:
    """A text column whose statistics say it holds a handful of values (all of them in most_common_vals)."""

    column: ColumnRef
    values: tuple[str, ...]
    covered: float  # the share of rows whose value is one of ``values`` (most_common_freqs + null_frac)


@dataclass(frozen=True, slots=True)
class DelimitedList:
    """A text column whose sampled values are lists joined by one delimiter (``red,green,blue``)."""

    column: ColumnRef
    delimiter: str
    share: float  # of the sampled values, those that are such lists
    samples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TextUuid:
    """A text column whose sampled values all parse as UUIDs; ``bad``: values in the table that do not
    (``None``: not scanned)."""

    column: ColumnRef
    bad: int | None


@dataclass(frozen=True, slots=True)
class EavTable:
    """A narrow table of (entity, attribute, value) columns: entity-attribute-value."""

    schema: str
    table: str
    entity: str
    attribute: str
    value: str
    rows: int


@dataclass(frozen=True, slots=True)
class KeyOverflow:
    """An integer key fed by a sequence (serial or identity) that has used ``used`` of its type's range."""

    column: ColumnRef
    sequence: str
    last_value: int
    max_value: int

    @property
    def used(self) -> float:
        return self.last_value / self.max_value if self.max_value else 0.0


@dataclass(frozen=True, slots=True)
class CollationMix:
    """MySQL/MariaDB: two columns a foreign key (or a ``<name>_id`` naming convention) joins whose character
    sets or collations differ, so the join converts every row and cannot use the index on one side."""

    column: ColumnRef
    collation: str
    ref: ColumnRef
    ref_collation: str
    declared_fk: bool


@dataclass(frozen=True, slots=True)
class FieldTypes:
    """One top-level field of a sampled MongoDB collection: how many sampled documents had it as each type
    (``number`` for int, long, double and decimal; ``null`` kept apart)."""

    name: str
    types: dict[str, int]


@dataclass(frozen=True, slots=True)
class CollectionShape:
    """A MongoDB collection: its ``$jsonSchema`` validator (if any) and the fields of a ``$sample``."""

    database: str
    collection: str
    validator: bool  # a validator with $jsonSchema (or any query-operator validator) is set
    validation_action: str | None  # error / warn, when a validator is set
    sampled: int
    fields: tuple[FieldTypes, ...]

    @property
    def drift(self) -> list[FieldTypes]:
        """Fields seen with two or more non-null types across the sample."""
        return [f for f in self.fields if len([t for t in f.types if t != "null"]) >= 2]


@dataclass(frozen=True, slots=True)
class SchemaDesignFacts:
    """What the schema designer found in the current database (``engine``: postgres or mysql)."""

    engine: str
    database: str
    missing_fks: list[ForeignKeyGap] = field(default_factory=list)
    never_null: list[NeverNull] = field(default_factory=list)
    float_money: list[MoneyColumn] = field(default_factory=list)
    naive_timestamps: list[ColumnRef] = field(default_factory=list)
    low_cardinality: list[LowCardinality] = field(default_factory=list)
    delimited: list[DelimitedList] = field(default_factory=list)
    text_uuids: list[TextUuid] = field(default_factory=list)
    json_columns: list[ColumnRef] = field(default_factory=list)  # ``json`` (not ``jsonb``) columns
    eav_tables: list[EavTable] = field(default_factory=list)
    key_overflow: list[KeyOverflow] = field(default_factory=list)
    collation_mixes: list[CollationMix] = field(default_factory=list)
    collections: list[CollectionShape] = field(default_factory=list)  # MongoDB
    check_rows_limit: int = 0  # the largest table the collector scanned to check a statement
    native_uuid: bool = False  # MySQL/MariaDB: the server has a UUID column type (MariaDB 10.7+)
