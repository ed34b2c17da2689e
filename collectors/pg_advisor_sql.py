"""SQL of the index advisor (collectors/pg_advisor.py): catalog reads and the statements worth advising on.

Everything here reads; nothing writes. The catalogs are those of the database the session is connected
to (indexes, tables and pg_stats are per database), and pg_stat_statements rows are filtered to it.
Row counts are capped so a database with a hundred thousand relations stays bounded.
"""

from __future__ import annotations

from dbwatch.collectors.pg_scope import USER_SCHEMA, not_extension_member

MAX_ROWS = 5000

# Statistics count since the database's stats_reset; PostgreSQL 15 keeps them over a clean restart, so
# the later of the two is a conservative start of the window in which "never scanned" was observed.
STATE = """
SELECT current_database() AS database,
       (SELECT extversion FROM pg_extension WHERE extname = 'hypopg') AS hypopg,
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') AS hypopg_available,
       (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS statements,
       extract(epoch FROM now() - greatest(
           (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
           pg_postmaster_start_time())) AS observed_seconds
"""

# The statements that matter: by total execution time in this database, with their share of the
# server's total. Entries are grouped by their normalised text (whitespace folded), not by queryid: one
# statement gets several queryids when a driver sends a parameter as int2 one time and int4 the next, and
# the share threshold applies to the statement as a whole. Reading the texts (pg_stat_statements(true))
# reads the extension's text file once per run. dbwatch's own EXPLAINs are left out (with track = all a
# statement planned inside one is counted under the EXPLAIN's text).
STATEMENTS = """
WITH s AS (
    SELECT min(queryid) AS queryid, min(query) AS query, count(DISTINCT queryid) AS queryids,
           sum(calls) AS calls, sum({time}) AS total_ms
    FROM pg_stat_statements(true)
    WHERE queryid IS NOT NULL AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query !~* '^\\s*explain\\y'
    GROUP BY regexp_replace(query, '\\s+', ' ', 'g')
), total AS (
    SELECT nullif(sum({time}), 0) AS ms FROM pg_stat_statements(false)
)
SELECT s.queryid, s.query, s.queryids, s.calls::bigint AS calls, s.total_ms, coalesce(s.total_ms / total.ms, 0) AS share
FROM s, total
WHERE coalesce(s.total_ms / total.ms, 0) >= $1 AND s.calls >= $2
ORDER BY s.total_ms DESC
LIMIT $3
"""


def statements_sql(extversion: tuple[int, ...]) -> str:
    # total_exec_time from extension version 1.8 (PostgreSQL 13); total_time before.
    return STATEMENTS.format(time="total_exec_time" if extversion >= (1, 8) else "total_time")


# Table references as written (quoted exactly), resolved with the session's search_path.
RESOLVE = "SELECT name, to_regclass(name)::oid AS oid FROM unnest($1::text[]) AS name"

TABLES = f"""
SELECT c.oid, n.nspname AS schema, c.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       greatest(c.reltuples, 0)::bigint AS rows, pg_table_size(c.oid) AS size_bytes,
       pg_relation_size(c.oid) AS heap_bytes,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) AS writes,
       coalesce(s.n_tup_upd + s.n_tup_del, 0) AS updates_deletes,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) AS index_count,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm')
  AND {USER_SCHEMA} AND {not_extension_member("c")}
  AND NOT c.relispartition
ORDER BY c.reltuples DESC
LIMIT {MAX_ROWS}
"""

# Columns of the tables a statement names, with what pg_stats knows of them (hidden without SELECT on the
# table: n_distinct is then NULL and candidates keep the statement's own order).
COLUMNS = """
SELECT a.attrelid AS oid, a.attname AS name, quote_ident(a.attname) AS quoted, a.attnotnull AS not_null,
       s.n_distinct, s.null_frac
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
                    AND NOT s.inherited
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""

# Every index with what duplicate/prefix detection compares: access method, key columns, operator
# classes, collations, options (ASC/DESC), expressions and predicate. An index being built right now
# (CREATE INDEX CONCURRENTLY in progress) is invalid by design and is left out.
INDEXES = f"""
SELECT i.indexrelid AS oid, i.indrelid AS table_oid, n.nspname AS schema, t.relname AS table,
       c.relname AS name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       am.amname AS method, pg_get_indexdef(i.indexrelid) AS definition,
       i.indnkeyatts AS key_count, i.indkey::int2[] AS keys, i.indclass::oid[] AS opclasses,
       i.indcollation::oid[] AS collations, i.indoption::int2[] AS options,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS expressions,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate,
       ARRAY(SELECT coalesce(a.attname, '(expression)')
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.pos) AS columns,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k
             ORDER BY k) AS key_defs,
       quote_ident(n.nspname) || '.' || quote_ident(t.relname) AS table_qualified,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
               AND k.contype IN ('p', 'u', 'x')) AS backs_constraint,
       pg_relation_size(i.indexrelid) AS size_bytes, coalesce(s.idx_scan, 0) AS scans
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE {USER_SCHEMA} AND {not_extension_member("t")}
  AND t.relkind IN ('r', 'm', 'p')
  AND i.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index WHERE index_relid IS NOT NULL)
ORDER BY pg_relation_size(i.indexrelid) DESC
LIMIT {MAX_ROWS}
"""

FOREIGN_KEYS = f"""
SELECT k.conrelid AS table_oid, k.conname AS name, k.conkey::int2[] AS keys,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS x(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum ORDER BY x.pos) AS columns,
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(k.conkey) WITH ORDINALITY AS x(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum ORDER BY x.pos) AS quoted,
       k.confrelid AS referenced_oid
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND {USER_SCHEMA} AND {not_extension_member("c")}
LIMIT {MAX_ROWS}
"""

# Sequences owned by a column (serial, identity, OWNED BY). last_value is NULL when the role may not read
# the sequence (pg_monitor does not grant it) or when it was never used. Descending sequences are skipped.
SEQUENCES = f"""
SELECT n.nspname AS schema, c.relname AS sequence, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       quote_ident(tn.nspname) || '.' || quote_ident(t.relname) AS table, a.attname AS column,
       quote_ident(a.attname) AS quoted_column, format_type(a.atttypid, a.atttypmod) AS column_type,
       ps.last_value, least(s.seqmax,
           CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                           ELSE 9223372036854775807 END) AS max_value
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
JOIN pg_class t ON t.oid = d.refobjid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = c.relname
WHERE s.seqincrement > 0 AND ps.last_value IS NOT NULL AND {USER_SCHEMA} AND {not_extension_member("t")}
ORDER BY ps.last_value::float8 / least(s.seqmax,
           CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                           ELSE 9223372036854775807 END)::float8 DESC
LIMIT 200
"""

# Sequences of a column the role may not read: counted, so the note can say what is hidden.
SEQUENCES_HIDDEN = """
SELECT count(*) AS hidden FROM pg_sequences WHERE last_value IS NULL
   AND NOT has_sequence_privilege(quote_ident(schemaname) || '.' || quote_ident(sequencename), 'SELECT,USAGE')
"""

HYPO_CREATE = "SELECT indexrelid, indexname FROM hypopg_create_index($1)"
HYPO_DROP = "SELECT hypopg_drop_index($1)"
HYPO_RESET = "SELECT hypopg_reset()"
