SET lock_timeout = '2s';
ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;  -- expect: type-change-rewrite
ALTER TABLE orders ALTER COLUMN status TYPE text;
