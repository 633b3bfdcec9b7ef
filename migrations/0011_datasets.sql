-- adit 0011: declared datasets.
--
-- A dataset (datasets/*.toml, or an operator's --datasets-dir) is a
-- partitioned table that `adit migrate` creates from its declaration. This
-- table records, per dataset, the declaration last applied (its canonical
-- JSON and the SHA-256 of that text): the next `adit migrate` compares the
-- declaration it loads with this one, applies what can change online (a new
-- nullable column) and refuses the rest. A handful of rows, kept for ever.
CREATE TABLE dataset_declarations (
    dataset      text PRIMARY KEY,
    table_name   text NOT NULL UNIQUE,
    declaration  jsonb NOT NULL,
    sha256       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A refused dataset row names its dataset; NULL is miner telemetry (every
-- reject before this migration). Nullable without default: no rewrite.
ALTER TABLE ingest_rejects ADD COLUMN dataset text;

-- Creates (if missing) the partition of a dataset table that holds `at`:
-- a UTC day, an ISO week (from Monday) or a calendar month, named
-- <table>_pYYYYMMDD after its first day (the dataset crate's Partition
-- computes the same bounds and name). Concurrent callers serialise on a
-- transaction advisory lock per table, as adit_ensure_day_partition does.
CREATE FUNCTION adit_ensure_dataset_partition(parent regclass, step text, at timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    base text := (SELECT relname FROM pg_class WHERE oid = parent);
    lo timestamp;
    hi timestamp;
    part text;
BEGIN
    IF step NOT IN ('day', 'week', 'month') THEN
        RAISE EXCEPTION 'partition interval must be day, week or month, not %', step;
    END IF;
    lo := date_trunc(step, at AT TIME ZONE 'UTC');
    hi := lo + ('1 ' || step)::interval;
    part := base || '_p' || to_char(lo, 'YYYYMMDD');
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('adit_partition:' || base));
    IF to_regclass(quote_ident(part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       part, parent, lo AT TIME ZONE 'UTC', hi AT TIME ZONE 'UTC');
    END IF;
    RETURN part;
END $$;
