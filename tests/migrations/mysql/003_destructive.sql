SET SESSION lock_wait_timeout = 5;
ALTER TABLE orders RENAME COLUMN amount TO total;  -- expect: rename-column
ALTER TABLE orders CHANGE status state VARCHAR(10);  -- expect: rename-column, mysql-copy-algorithm
RENAME TABLE orders TO purchases;  -- expect: rename-table
ALTER TABLE orders DROP COLUMN legacy;  -- expect: drop-column
DROP TABLE old_orders;  -- expect: drop-table
