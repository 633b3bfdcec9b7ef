-- adit 0001: keys, raw telemetry, rejects, upload log, idempotency.
--
-- Layout choices for miner_telemetry, from the measurements in SPEC §3
-- (binary COPY of one million realistic rows, 2 cores):
--   boards as JSONB, no index ............................ 14.1 s
--   boards as four parallel arrays, no index .............  7.4 s
--   arrays + one btree (site_id, miner_id, ts) ........... 10.7 s
--   seed layout (NUMERIC/VARCHAR, four indexes) ..........  31 s
-- So: boards become parallel arrays (board_hashrate, board_temp,
-- board_chips_ok, board_chips_total; board_ids stays NULL when ids are just
-- 0..n-1), there is exactly one btree, and every number is a fixed-width
-- float/int (no NUMERIC: it is variable-length and slow to encode and sum).
-- Temperatures, power, frequency, efficiency and latencies are float4: the
-- sensors give three significant digits at best, and 4 bytes a value keeps
-- rows short. Hashrates and counters stay 8 bytes wide (counters grow past
-- 2^31, hashrates span 10^8 GH/s).
-- Columns are ordered 8-byte, 4-byte, 2-byte, 1-byte, then variable-length,
-- so PostgreSQL inserts no alignment padding.
-- The btree (site_id, miner_id, ts) serves every dashboard and rollup query
-- (one miner's history, a site's latest rows) and nothing else is indexed.
-- Partitions are daily ranges on ts; the writer COPYs straight into the day
-- partition, and retention drops whole partitions.

CREATE TABLE collector_keys (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SHA-256 of the key; the key itself is never stored.
    key_hash    bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    -- The site a collector key writes for; NULL for admin tokens.
    site_id     integer,
    is_admin    boolean NOT NULL DEFAULT false,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (is_admin = (site_id IS NULL))
);

CREATE TABLE miner_telemetry (
    ts                     timestamptz NOT NULL,
    hashrate_ghs           float8,
    hashrate_5s_ghs        float8,
    hashrate_expected_ghs  float8,
    accepted_shares        int8,
    rejected_shares        int8,
    hardware_errors        int8,
    uptime_seconds         int8,
    site_id                int4 NOT NULL,
    temperature_avg        float4,
    temperature_min        float4,
    temperature_max        float4,
    frequency_avg          float4,
    power_consumption      float4,
    efficiency             float4,
    pool_latency_ms        float4,
    latency_ms             float4,
    boards_total           int2,
    boards_healthy         int2,
    online                 boolean,
    miner_id               text NOT NULL,
    ip_address             text,
    pool_url               text,
    worker_name            text,
    overall_health         text,
    model                  text,
    firmware_version       text,
    error_message          text,
    temperature_chips      float4[],
    fan_speeds             int4[],
    board_ids              int2[],
    board_hashrate         float4[],
    board_temp             float4[],
    board_chips_ok         int2[],
    board_chips_total      int2[],
    -- Fields the collector sent that the contract does not name.
    extra                  jsonb
) PARTITION BY RANGE (ts);

CREATE INDEX miner_telemetry_site_miner_ts ON miner_telemetry (site_id, miner_id, ts);

-- A refused row, verbatim, with the reason. Small and append-only.
CREATE TABLE ingest_rejects (
    received_at  timestamptz NOT NULL,
    site_id      int4 NOT NULL,
    key_id       int4 NOT NULL,
    upload_id    int8 NOT NULL,
    row_index    int4 NOT NULL,
    field        text NOT NULL,
    reason       text NOT NULL,
    raw          text NOT NULL
);
CREATE INDEX ingest_rejects_site_time ON ingest_rejects (site_id, received_at);

-- One row per acknowledged upload, written in the same transaction as its
-- rows. Daily partitions on created_at (retention 7 days).
CREATE TABLE upload_log (
    created_at          timestamptz NOT NULL,
    upload_id           int8 NOT NULL,
    site_id             int4 NOT NULL,
    key_id              int4 NOT NULL,
    processed           int4 NOT NULL,
    online              int4 NOT NULL,
    offline             int4 NOT NULL,
    rejected            int4 NOT NULL,
    bytes_in            int4 NOT NULL,
    bytes_raw           int4 NOT NULL,
    processing_time_ms  int4 NOT NULL,
    idempotency_key     text
) PARTITION BY RANGE (created_at);
CREATE INDEX upload_log_upload_id ON upload_log (upload_id);

-- Idempotency-Key claims: the first answer of an upload, kept 24 hours so a
-- retry gets it back byte for byte. Written in the upload's transaction.
CREATE TABLE idempotency_keys (
    key_id       int4 NOT NULL,
    idem_key     text NOT NULL,
    body_sha256  bytea NOT NULL,
    response     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Creates the daily partition of `parent` holding `day`, if it is missing.
-- Safe under concurrency: creators serialise on an advisory lock, so two
-- writers (or two adit processes) never race each other into an error.
CREATE FUNCTION adit_ensure_day_partition(parent regclass, day date)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    base text := (SELECT relname FROM pg_class WHERE oid = parent);
    part text := base || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('adit_partition:' || base));
    IF to_regclass(quote_ident(part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       part, parent, day::timestamp AT TIME ZONE 'UTC',
                       (day + 1)::timestamp AT TIME ZONE 'UTC');
    END IF;
    RETURN part;
END $$;
