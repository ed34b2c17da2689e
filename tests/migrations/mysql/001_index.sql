SET SESSION lock_wait_timeout = 5;
ALTER TABLE orders ADD INDEX orders_customer (customer_id);  -- expect: mysql-index-not-online
CREATE INDEX orders_region ON orders (region);  -- expect: mysql-index-not-online
ALTER TABLE orders ADD INDEX orders_status (status), ALGORITHM=INPLACE, LOCK=NONE;
CREATE INDEX orders_created ON orders (created_at) ALGORITHM=INPLACE LOCK=NONE;
