CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, payload TEXT) ENGINE=InnoDB;  -- expect: int-primary-key
CREATE TABLE events2 (id BIGINT UNSIGNED AUTO_INCREMENT, payload TEXT, PRIMARY KEY (id)) ENGINE=InnoDB;
CREATE INDEX events_payload ON events (payload(10));
ALTER TABLE events MODIFY COLUMN payload MEDIUMTEXT;
