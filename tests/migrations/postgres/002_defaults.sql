SET lock_timeout = '2s';
-- Fast since PostgreSQL 11: the default is stored in the catalog, no row is written.
ALTER TABLE orders ADD COLUMN note text DEFAULT 'none';
ALTER TABLE orders ADD COLUMN seen_at timestamptz DEFAULT now();
ALTER TABLE orders ADD COLUMN flags int DEFAULT 0 NOT NULL, ADD COLUMN kind text DEFAULT 'x'::text;
ALTER TABLE orders ADD COLUMN plain int;
ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();  -- expect: volatile-default
ALTER TABLE orders ADD COLUMN r float8 DEFAULT random();  -- expect: volatile-default
ALTER TABLE orders ADD COLUMN seq bigserial;  -- expect: volatile-default
ALTER TABLE orders ADD COLUMN required int NOT NULL;  -- expect: not-null-without-default
ALTER TABLE orders ADD COLUMN required2 int NOT NULL DEFAULT 1;
ALTER TABLE orders ADD COLUMN doubled int GENERATED ALWAYS AS (amount * 2) STORED;  -- expect: volatile-default
