-- adit 0003: the Parquet archive's bookkeeping.
--
-- Exactly-once archiving: every flush transaction that writes telemetry
-- tags its rows with a random batch_id and queues one archive_queue row per
-- (batch, site, day) in the same transaction. A Parquet file counts only
-- when the transaction that records it in archive_files also deletes the
-- queue rows of every batch it holds; if any is already gone (archived by
-- another path or process), the file is discarded instead. So a committed
-- row is archived once, and a crash at any point leaves either a queue row
-- (re-exported from PostgreSQL later) or an unrecorded object (an orphan,
-- deleted at recovery) — never a lost or doubled row.

ALTER TABLE miner_telemetry ADD COLUMN batch_id int8;

CREATE TABLE archive_queue (
    batch_id   int8 NOT NULL,
    site_id    int4 NOT NULL,
    day        date NOT NULL,
    rows       int4 NOT NULL,
    min_ts     timestamptz NOT NULL,
    max_ts     timestamptz NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, site_id, day)
);
CREATE INDEX archive_queue_window ON archive_queue (site_id, day);

-- The manifest: every file of the archive. A file is recorded as
-- 'writing' before it is uploaded and becomes 'live' in the transaction that
-- claims its batches, so an object with no manifest row at all is an orphan
-- that recovery may delete at any time, and a 'writing' row that stays
-- behind marks an upload a crash interrupted.
CREATE TABLE archive_files (
    id          int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path        text NOT NULL UNIQUE,
    site_id     int4 NOT NULL,
    day         date NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('part', 'compacted')),
    state       text NOT NULL CHECK (state IN ('writing', 'live')),
    rows        int8 NOT NULL,
    min_ts      timestamptz NOT NULL,
    max_ts      timestamptz NOT NULL,
    bytes       int8 NOT NULL,
    sha256      bytea NOT NULL,
    -- Checksum of key columns: sum of ts (µs since the Unix epoch) and of
    -- accepted_shares over the file's rows; `adit archive verify` compares
    -- them with PostgreSQL and with the files themselves.
    ts_sum      numeric NOT NULL,
    shares_sum  numeric NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archive_files_window ON archive_files (site_id, day);
