SET lock_timeout = '2s';
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);  -- expect: foreign-key-not-valid
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk2 FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk2;
ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount > 0);  -- expect: check-not-valid
ALTER TABLE orders ADD CONSTRAINT orders_amount_positive2 CHECK (amount > 0) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_code_unique UNIQUE (code);  -- expect: unique-without-index
CREATE UNIQUE INDEX CONCURRENTLY orders_code_idx ON orders (code);
ALTER TABLE orders ADD CONSTRAINT orders_code_unique2 UNIQUE USING INDEX orders_code_idx;
