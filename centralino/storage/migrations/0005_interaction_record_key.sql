-- An idempotency key per interaction record: a write whose outcome is unknown (a timeout after
-- the INSERT was sent, a spooled record retried after an outage) is retried with the same key
-- and lands once. Nullable: rows written without a key (and older rows) stay valid; NULLs never
-- conflict with each other.
ALTER TABLE interactions ADD COLUMN record_key text;
ALTER TABLE interactions ADD CONSTRAINT interactions_record_key_key UNIQUE (record_key);
