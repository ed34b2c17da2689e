SET lock_timeout = '2s';
ALTER TABLE orders RENAME COLUMN amount TO total;  -- expect: rename-column
ALTER TABLE orders RENAME TO purchases;  -- expect: rename-table
ALTER TABLE orders DROP COLUMN legacy;  -- expect: drop-column
DROP TABLE old_orders;  -- expect: drop-table
VACUUM FULL orders;  -- expect: table-rewrite
ALTER TABLE orders SET TABLESPACE fast;  -- expect: table-rewrite
ALTER TABLE orders SET UNLOGGED;  -- expect: table-rewrite
