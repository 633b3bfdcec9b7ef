-- Host inventory: the newest snapshot per (site, client) and a history of
-- what changed. Snapshots arrive through the `inventory` dataset
-- (table inventory_snapshots, upsert by (site, client_id, collected_at));
-- in the same transaction the writer calls adit_inventory_apply on the
-- batch's staging table, so latest and history commit with the rows.

-- One row per client, never aged out while the client reports. Keyed by
-- (site, client): a client id is the agent's own and only unique in a site.
CREATE TABLE inventory_latest (
    site_id              int4        NOT NULL,
    client_id            text        NOT NULL,
    hostname             text,
    os                   text,
    platform             text,
    arch                 text,
    cpu_count            int4,
    cpu_model            text,
    cpu_usage_percent    float8,
    memory_total         int8,
    memory_used          int8,
    memory_free          int8,
    memory_usage_percent float8,
    disk_total           int8,
    disk_used            int8,
    disk_free            int8,
    disk_usage_percent   float8,
    ip_addresses         text[],
    mac_addresses        text[],
    collected_at         timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    raw_data             jsonb,
    PRIMARY KEY (site_id, client_id)
);
-- The listing's filters: by os, by hostname prefix (text_pattern_ops
-- serves LIKE 'prefix%' whatever the collation).
CREATE INDEX inventory_latest_os ON inventory_latest (site_id, os);
CREATE INDEX inventory_latest_hostname ON inventory_latest (site_id, hostname text_pattern_ops);

-- A row per real change (hardware_change, network_change, os_change) and
-- one periodic_snapshot per client and UTC day. Partitioned by month of
-- collected_at (retention deletes rows by type, so partitions stay).
CREATE TABLE inventory_history (
    id             int8        GENERATED ALWAYS AS IDENTITY,
    site_id        int4        NOT NULL,
    client_id      text        NOT NULL,
    hostname       text,
    os             text,
    platform       text,
    arch           text,
    cpu_count      int4,
    cpu_model      text,
    memory_total   int8,
    memory_used    int8,
    disk_total     int8,
    disk_used      int8,
    ip_addresses   text[],
    mac_addresses  text[],
    change_type    text        NOT NULL
        CHECK (change_type IN ('hardware_change', 'network_change', 'os_change', 'periodic_snapshot')),
    change_summary text,
    collected_at   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    raw_data       jsonb
) PARTITION BY RANGE (collected_at);
CREATE INDEX inventory_history_client ON inventory_history (site_id, client_id, collected_at DESC);

-- A text array as a set: distinct items, sorted (NULL stays NULL).
CREATE FUNCTION adit_inventory_set(a text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN a IS NULL THEN NULL
                ELSE ARRAY(SELECT DISTINCT x FROM unnest(a) x ORDER BY x) END
$$;

-- "field: old -> new" when both are known and differ, else NULL. A field a
-- snapshot does not carry is unknown, not a change.
CREATE FUNCTION adit_inventory_diff(field text, old anyelement, new anyelement) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN old IS NOT NULL AND new IS NOT NULL AND old IS DISTINCT FROM new
                THEN field || ': ' || old::text || ' -> ' || new::text END
$$;

-- Applies a batch of snapshots (the staging table of the inventory
-- dataset, whose `arrival` column orders rows sent twice: the last wins) to inventory_latest and inventory_history, per client in time
-- order. Each client's latest row is locked (FOR UPDATE; a first snapshot
-- takes the lock through its insert) before it is compared, so concurrent
-- transactions with snapshots of one client compare one after the other
-- and each real change is written once. A snapshot not newer than the
-- client's latest is ignored (late or repeated). Returns the history rows
-- written.
CREATE FUNCTION adit_inventory_apply(stage regclass, arrival text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    s       record;
    l       inventory_latest%ROWTYPE;
    hw      text[];
    net     text[];
    sys     text[];
    written int := 0;
    n       int;
    day0    timestamptz;
BEGIN
    FOR s IN EXECUTE format(
        'SELECT DISTINCT ON (site_id, client_id, collected_at) * FROM %s '
        'ORDER BY site_id, client_id, collected_at, %I DESC', stage, arrival)
    LOOP
        SELECT * INTO l FROM inventory_latest
         WHERE site_id = s.site_id AND client_id = s.client_id FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO inventory_latest (site_id, client_id, collected_at)
            VALUES (s.site_id, s.client_id, '-infinity')
            ON CONFLICT (site_id, client_id) DO NOTHING;
            SELECT * INTO l FROM inventory_latest
             WHERE site_id = s.site_id AND client_id = s.client_id FOR UPDATE;
        END IF;
        CONTINUE WHEN s.collected_at <= l.collected_at;

        IF l.collected_at > '-infinity' THEN
            hw := array_remove(ARRAY[
                adit_inventory_diff('cpu_count', l.cpu_count, s.cpu_count),
                adit_inventory_diff('cpu_model', l.cpu_model, s.cpu_model),
                adit_inventory_diff('memory_total', l.memory_total, s.memory_total),
                adit_inventory_diff('disk_total', l.disk_total, s.disk_total)], NULL);
            net := array_remove(ARRAY[
                adit_inventory_diff('ip_addresses', adit_inventory_set(l.ip_addresses),
                                    adit_inventory_set(s.ip_addresses)),
                adit_inventory_diff('mac_addresses', adit_inventory_set(l.mac_addresses),
                                    adit_inventory_set(s.mac_addresses))], NULL);
            sys := array_remove(ARRAY[
                adit_inventory_diff('os', l.os, s.os),
                adit_inventory_diff('platform', l.platform, s.platform),
                adit_inventory_diff('platform_version', l.raw_data->'host'->>'platform_version',
                                    s.raw_data->'host'->>'platform_version'),
                adit_inventory_diff('kernel_version', l.raw_data->'host'->>'kernel_version',
                                    s.raw_data->'host'->>'kernel_version')], NULL);
        ELSE
            hw := '{}'; net := '{}'; sys := '{}';
        END IF;

        day0 := date_trunc('day', s.collected_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        PERFORM adit_ensure_dataset_partition('inventory_history', 'month', s.collected_at);
        INSERT INTO inventory_history (site_id, client_id, hostname, os, platform, arch,
                cpu_count, cpu_model, memory_total, memory_used, disk_total, disk_used,
                ip_addresses, mac_addresses, change_type, change_summary, collected_at, raw_data)
        SELECT s.site_id, s.client_id, s.hostname, s.os, s.platform, s.arch,
               s.cpu_count, s.cpu_model, s.memory_total, s.memory_used, s.disk_total, s.disk_used,
               s.ip_addresses, s.mac_addresses, c.kind, c.summary, s.collected_at, s.raw_data
          FROM (VALUES ('hardware_change', hw), ('network_change', net), ('os_change', sys),
                       ('periodic_snapshot', NULL)) AS c0(kind, changes)
          CROSS JOIN LATERAL (SELECT c0.kind, CASE WHEN c0.changes IS NULL
                   THEN 'daily snapshot' ELSE array_to_string(c0.changes, '; ') END AS summary) c
         WHERE CASE WHEN c0.changes IS NOT NULL THEN cardinality(c0.changes) > 0
                    ELSE NOT EXISTS (SELECT 1 FROM inventory_history h
                                      WHERE h.site_id = s.site_id AND h.client_id = s.client_id
                                        AND h.change_type = 'periodic_snapshot'
                                        AND h.collected_at >= day0
                                        AND h.collected_at < day0 + interval '1 day') END;
        GET DIAGNOSTICS n = ROW_COUNT;
        written := written + n;

        INSERT INTO inventory_latest AS il (site_id, client_id, hostname, os, platform, arch,
                cpu_count, cpu_model, cpu_usage_percent, memory_total, memory_used, memory_free,
                memory_usage_percent, disk_total, disk_used, disk_free, disk_usage_percent,
                ip_addresses, mac_addresses, collected_at, updated_at, raw_data)
        VALUES (s.site_id, s.client_id, s.hostname, s.os, s.platform, s.arch,
                s.cpu_count, s.cpu_model, s.cpu_usage_percent, s.memory_total, s.memory_used,
                s.memory_free, s.memory_usage_percent, s.disk_total, s.disk_used, s.disk_free,
                s.disk_usage_percent, s.ip_addresses, s.mac_addresses, s.collected_at, now(),
                s.raw_data)
        ON CONFLICT (site_id, client_id) DO UPDATE SET
            hostname = excluded.hostname, os = excluded.os, platform = excluded.platform,
            arch = excluded.arch, cpu_count = excluded.cpu_count, cpu_model = excluded.cpu_model,
            cpu_usage_percent = excluded.cpu_usage_percent, memory_total = excluded.memory_total,
            memory_used = excluded.memory_used, memory_free = excluded.memory_free,
            memory_usage_percent = excluded.memory_usage_percent,
            disk_total = excluded.disk_total, disk_used = excluded.disk_used,
            disk_free = excluded.disk_free, disk_usage_percent = excluded.disk_usage_percent,
            ip_addresses = excluded.ip_addresses, mac_addresses = excluded.mac_addresses,
            collected_at = excluded.collected_at, updated_at = now(), raw_data = excluded.raw_data
        WHERE excluded.collected_at > il.collected_at;
    END LOOP;
    RETURN written;
END $$;
