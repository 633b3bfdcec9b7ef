-- Two transactions that need the same new partition at once (two writer
-- workers or two nodes with late rows for a day nobody wrote yet): the
-- second waited for the first's advisory lock, then still saw no partition
-- (its catalog cache predates the first's commit) and failed with 42P07
-- "relation already exists". Now a partition created meanwhile is taken as
-- it is. Same signatures and names as before.

CREATE OR REPLACE FUNCTION adit_ensure_day_partition(parent regclass, day date)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    base text := (SELECT relname FROM pg_class WHERE oid = parent);
    part text := base || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('adit_partition:' || base));
    BEGIN
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       part, parent, day::timestamp AT TIME ZONE 'UTC',
                       (day + 1)::timestamp AT TIME ZONE 'UTC');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL; -- created by a transaction that committed while this one waited
    END;
    RETURN part;
END $$;

CREATE OR REPLACE FUNCTION adit_ensure_dataset_partition(parent regclass, step text, at timestamptz)
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
    BEGIN
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       part, parent, lo AT TIME ZONE 'UTC', hi AT TIME ZONE 'UTC');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL; -- created by a transaction that committed while this one waited
    END;
    RETURN part;
END $$;
