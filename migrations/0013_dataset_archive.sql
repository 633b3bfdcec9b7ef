-- adit 0013: the dataset archive's bookkeeping.
--
-- A dataset's archive is exported from PostgreSQL per window (dataset,
-- site, UTC day of the time column) once the day is closed. The writer
-- marks a window dirty in the transaction that writes its rows (for a
-- dataset declared with archive = true): a new mark, or a new marked_at on
-- an existing one. The archiver exports a dirty window whose day ended
-- long enough ago, and clears the mark in the transaction that records the
-- window's new files only if marked_at is still the one it read before
-- reading the rows: a row committed meanwhile keeps the window dirty, and
-- the next pass exports it. (0012 may create the same table first.)
CREATE TABLE IF NOT EXISTS dataset_archive_dirty (
    dataset    text NOT NULL,
    site_id    int4 NOT NULL,
    day        date NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, site_id, day)
);

-- The manifest of dataset files, apart from miner telemetry's
-- archive_files: a dataset window is replaced whole from PostgreSQL (no
-- batch claims, no part files, no accepted_shares), and every query on
-- archive_files stays telemetry's alone. As there: a file is recorded as
-- 'writing' (by the connection that uploads it, writer_pid) before the
-- upload and becomes 'live' in the transaction that retires the window's
-- previous files, so an object no row names is an orphan and a 'writing'
-- row whose backend is gone marks an upload a crash interrupted; both are
-- deleted at recovery and never counted.
CREATE TABLE dataset_archive_files (
    id          int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset     text NOT NULL,
    path        text NOT NULL UNIQUE,
    site_id     int4 NOT NULL,
    day         date NOT NULL,
    state       text NOT NULL CHECK (state IN ('writing', 'live')),
    rows        int8 NOT NULL,
    bytes       int8 NOT NULL,
    sha256      bytea NOT NULL,
    -- Sum of the time column (µs since the Unix epoch) over the file's
    -- rows; `adit archive verify --dataset` compares it with PostgreSQL
    -- and with the file read back.
    ts_sum      numeric NOT NULL,
    writer_pid  int4 DEFAULT pg_backend_pid(),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dataset_archive_files_window ON dataset_archive_files (dataset, site_id, day);
