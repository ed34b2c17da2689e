SET SESSION lock_wait_timeout = 5;
-- Instant since MariaDB 10.3 / MySQL 8.0.12: not flagged.
ALTER TABLE orders ADD COLUMN note VARCHAR(20) DEFAULT 'none';
ALTER TABLE orders MODIFY COLUMN amount BIGINT NOT NULL;  -- expect: mysql-copy-algorithm
ALTER TABLE `orders` CONVERT TO CHARACTER SET utf8mb4;  -- expect: mysql-copy-algorithm
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);  -- expect: mysql-copy-algorithm
ALTER TABLE orders ADD COLUMN flags INT, ALGORITHM=COPY;  -- expect: mysql-copy-algorithm
