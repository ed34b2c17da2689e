ALTER TABLE orders ADD COLUMN plain int;  -- expect: missing-lock-timeout
ALTER TABLE orders ADD COLUMN plain2 int;
