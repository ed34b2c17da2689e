-- A table the migration creates: nothing waits on it, so its index and keys need no care.
CREATE TABLE shipments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, order_id bigint NOT NULL, code text);
CREATE INDEX shipments_order ON shipments (order_id);
ALTER TABLE shipments ADD CONSTRAINT shipments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE shipments ADD CONSTRAINT shipments_code_unique UNIQUE (code);
CREATE TABLE legacy_events (id serial PRIMARY KEY, payload text);  -- expect: int-primary-key
CREATE TABLE tags (id integer, name text, PRIMARY KEY (id));  -- expect: int-primary-key
