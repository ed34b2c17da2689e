SET SESSION lock_wait_timeout = 5;
-- A trigger written for the mysql client: DELIMITER changes what ends a statement.
DELIMITER //
CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW
BEGIN
  SET NEW.total = NEW.amount;
END//
DELIMITER ;
ALTER TABLE orders DROP COLUMN legacy;  -- expect: drop-column
