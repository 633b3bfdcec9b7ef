-- adit 0008: rollup hours that fail, and retention of the tables that are
-- not partitioned.
--
-- A dirty hour (or day) whose recomputation fails (the database refuses
-- it) no longer blocks the marks after it: the worker records the failure
-- on the mark and moves on. `failures` counts consecutive failed attempts,
-- `last_error` is the database's message with its SQLSTATE, and
-- `retry_at` is when the mark is tried again (backoff doubling from one
-- minute, capped at one hour). A failing mark still counts in
-- adit_rollup_lag_seconds, and adit_rollup_failing_hours counts them.
-- The writer's upsert of a mark leaves these columns alone.
ALTER TABLE rollup_dirty_hours
    ADD COLUMN failures   int4 NOT NULL DEFAULT 0,
    ADD COLUMN retry_at   timestamptz,
    ADD COLUMN last_error text;
ALTER TABLE rollup_dirty_days
    ADD COLUMN failures   int4 NOT NULL DEFAULT 0,
    ADD COLUMN retry_at   timestamptz,
    ADD COLUMN last_error text;

-- Retention of rows, deleted in bounded batches (a purge never holds a long
-- lock): rejects by age (--retention-rejects-days, 7), resolved events by
-- the time they were resolved (--retention-resolved-events-days, 30).
-- These indexes find the expired rows without scanning the table; both
-- tables are written at a low rate, so the extra index costs ingest
-- nothing measurable. miner_live gets no index: its rows are rewritten
-- every few seconds as HOT updates, which an index on updated_at would
-- prevent; its purge walks the primary key in batches instead.
CREATE INDEX ingest_rejects_received_at ON ingest_rejects (received_at);
CREATE INDEX events_resolved_at ON events (resolved_at) WHERE status = 'resolved';
