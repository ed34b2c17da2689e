SET lock_timeout = '2s';
SET statement_timeout = '10min';
CREATE INDEX orders_customer ON orders (customer_id);  -- expect: index-not-concurrent
CREATE INDEX CONCURRENTLY orders_region ON orders (region);
BEGIN;
CREATE INDEX CONCURRENTLY orders_status ON orders (status);  -- expect: concurrently-in-transaction
COMMIT;
DROP INDEX CONCURRENTLY orders_region;
DROP INDEX orders_customer;  -- expect: drop-index-not-concurrent
