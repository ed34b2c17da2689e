SET lock_timeout = '2s';
ALTER TABLE orders ALTER COLUMN status SET NOT NULL;  -- expect: set-not-null
-- The safe path: a NOT VALID check, validated, proves the column for SET NOT NULL (PostgreSQL 12+).
ALTER TABLE orders ADD CONSTRAINT orders_region_not_null CHECK (region IS NOT NULL) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_region_not_null;
ALTER TABLE orders ALTER COLUMN region SET NOT NULL;
ALTER TABLE orders DROP CONSTRAINT orders_region_not_null;
