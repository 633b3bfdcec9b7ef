-- adit 0002: hourly and daily rollups, and the dirty marks that drive them.
--
-- Dashboards and reports read these tables, never raw rows. Each row is a
-- complete recomputation of its bucket (DELETE + INSERT in one
-- transaction), so recomputing a bucket twice changes nothing and several
-- workers can never double-count.
--
-- Counter increases (accepted_shares, rejected_shares, hardware_errors):
-- collectors send cumulative counters. The increase between two
-- consecutive readings of a miner is cur - prev when cur >= prev and cur
-- after a reset (reboot); it counts in the bucket of the later reading, so
-- the first reading of an hour pairs with the last reading before it. A
-- reading is a sample that is not marked offline and carries that counter
-- (offline samples often report zeros, which would fake a reset). A miner's
-- very first reading has no baseline and adds nothing.
--
-- The *_n columns count the samples that carried each averaged metric; the
-- daily rollup uses them as weights, so a daily average equals the average
-- over the day's raw samples exactly.

CREATE TABLE miner_telemetry_hourly (
    bucket           timestamptz NOT NULL,  -- start of the hour, UTC
    site_id          int4 NOT NULL,
    miner_id         text NOT NULL,
    samples          int4 NOT NULL,
    online_samples   int4 NOT NULL,
    hashrate_avg     float8,                -- GH/s
    hashrate_min     float8,
    hashrate_max     float8,
    hashrate_n       int4 NOT NULL,
    temperature_avg  float8,                -- mean of temperature_avg, °C
    temperature_max  float8,                -- max of temperature_max, °C
    temperature_n    int4 NOT NULL,
    power_avg        float8,                -- W
    power_n          int4 NOT NULL,
    efficiency_avg   float8,
    efficiency_n     int4 NOT NULL,
    accepted_shares  int8 NOT NULL,         -- increase within the bucket
    rejected_shares  int8 NOT NULL,
    hardware_errors  int8 NOT NULL,
    reject_rate      float8,                -- percent of shares rejected; NULL without shares
    uptime_pct       float8 NOT NULL,       -- online samples / expected samples, capped at 100
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, miner_id, bucket)
);
CREATE INDEX miner_telemetry_hourly_bucket ON miner_telemetry_hourly (bucket);

CREATE TABLE miner_telemetry_daily (LIKE miner_telemetry_hourly INCLUDING ALL);

CREATE TABLE site_telemetry_hourly (
    bucket             timestamptz NOT NULL,
    site_id            int4 NOT NULL,
    miners             int4 NOT NULL,       -- miners that reported in the hour
    samples            int4 NOT NULL,
    online_samples     int4 NOT NULL,
    hashrate_total     float8,              -- sum of the miners' average hashrate, GH/s
    hashrate_avg       float8,              -- per sample
    hashrate_min       float8,
    hashrate_max       float8,
    temperature_avg    float8,
    temperature_max    float8,
    power_total        float8,              -- sum of the miners' average power, W
    efficiency_avg     float8,
    accepted_shares    int8 NOT NULL,
    rejected_shares    int8 NOT NULL,
    hardware_errors    int8 NOT NULL,
    reject_rate        float8,
    uptime_pct         float8 NOT NULL,     -- online samples / (miners × expected samples)
    computed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, bucket)
);

-- Hours whose rollup must be (re)computed. The writer marks every hour it
-- writes rows into, and the next hour (its first counter increase pairs
-- with the last reading before it), in the same transaction as the rows.
-- `version` grows with every mark: a worker deletes a mark only if it is
-- still the version it computed from, so rows that land meanwhile are
-- never missed.
CREATE TABLE rollup_dirty_hours (
    site_id  int4 NOT NULL,
    bucket   timestamptz NOT NULL,
    version  int8 NOT NULL DEFAULT 1,
    PRIMARY KEY (site_id, bucket)
);
CREATE INDEX rollup_dirty_hours_bucket ON rollup_dirty_hours (bucket);

-- Days whose daily rollup must be recomputed from their hourly rows.
CREATE TABLE rollup_dirty_days (
    site_id  int4 NOT NULL,
    day      date NOT NULL,
    version  int8 NOT NULL DEFAULT 1,
    PRIMARY KEY (site_id, day)
);
