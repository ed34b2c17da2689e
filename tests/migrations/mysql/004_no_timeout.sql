ALTER TABLE orders ADD COLUMN plain INT;  -- expect: missing-lock-timeout
ALTER TABLE orders ADD COLUMN plain2 INT;
