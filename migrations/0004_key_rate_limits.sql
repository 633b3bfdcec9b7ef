-- adit 0004: a per-key upload rate limit (uploads per second, burst twice
-- that). NULL: the server's default (--rate-limit-per-key); 0: unlimited.
ALTER TABLE collector_keys ADD COLUMN uploads_per_s real CHECK (uploads_per_s >= 0);
