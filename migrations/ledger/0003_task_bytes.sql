-- The bytes of Arrow data each task sent (its last attempt's).
ALTER TABLE tasks ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
