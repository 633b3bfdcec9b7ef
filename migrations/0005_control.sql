-- adit 0005: the collector control plane (seed 000 agent_* tables, seed 002
-- §3.2-3.4) and the dashboard read side (seed 002 §9).
--
-- A "collector" is a collector key: one edge collector per key, one site
-- per key. Everything here is low-rate next to telemetry (a heartbeat per
-- collector every ~30 s, a few commands per miner per day), so plain
-- tables with the indexes their queries need; only heartbeats, which grow
-- without bound, are partitioned (daily, 7-day retention by dropping
-- partitions).

-- Commands for miners, fetched by the site's collector. `priority` 0-9,
-- higher first. `timeout_s`: a sent command with no result after it goes
-- back to pending (retry_count + 1) until max_retries, then expires.
CREATE TABLE agent_commands (
    id              int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         int4 NOT NULL,
    miner_id        text NOT NULL,
    ip_address      text,
    command         text NOT NULL CHECK (command IN
                    ('enable', 'disable', 'restart', 'reboot', 'set_pool', 'set_fan', 'set_frequency')),
    params          jsonb NOT NULL DEFAULT '{}',
    priority        int2 NOT NULL CHECK (priority BETWEEN 0 AND 9),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'sent', 'completed', 'failed', 'expired', 'cancelled')),
    created_by      int4 NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    finished_at     timestamptz,
    timeout_s       int4 NOT NULL DEFAULT 300 CHECK (timeout_s > 0),
    retry_count     int4 NOT NULL DEFAULT 0,
    max_retries     int4 NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    result_code     int4,
    result_message  text
);
-- The collector's poll: a site's pending commands by priority then age.
CREATE INDEX agent_commands_pending ON agent_commands (site_id, priority DESC, created_at, id)
    WHERE status = 'pending';
-- The sweep: sent commands past their timeout.
CREATE INDEX agent_commands_sent ON agent_commands (sent_at) WHERE status = 'sent';
-- History by site and time.
CREATE INDEX agent_commands_site_created ON agent_commands (site_id, created_at DESC);

-- Every state change of a command: who (admin:N, collector:N, system),
-- what, when.
CREATE TABLE agent_command_logs (
    id          int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id  int8 NOT NULL REFERENCES agent_commands (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL,
    old_status  text,
    new_status  text NOT NULL,
    actor       text NOT NULL,
    message     text
);
CREATE INDEX agent_command_logs_command ON agent_command_logs (command_id, at);

-- One row per collector (key): what its last heartbeat said.
CREATE TABLE collector_agents (
    key_id              int4 PRIMARY KEY,
    site_id             int4 NOT NULL,
    status              text NOT NULL CHECK (status IN ('online', 'offline')),
    heartbeat_interval_s int4 NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    last_ip             text,
    version             text,
    last_status         text,
    miners_online       int4,
    miners_total        int4
);
CREATE INDEX collector_agents_online ON collector_agents (last_seen_at) WHERE status = 'online';

-- Heartbeats as sent (seed 000 agent_heartbeats), daily partitions on ts.
CREATE TABLE agent_heartbeats (
    ts              timestamptz NOT NULL,
    key_id          int4 NOT NULL,
    site_id         int4 NOT NULL,
    status          text,
    cpu_usage       float4,
    memory_usage    float4,
    disk_usage      float4,
    uptime          int8,
    ip_address      text,
    version         text,
    miners_online   int4,
    miners_total    int4,
    errors_count    int4,
    extra_data      jsonb
) PARTITION BY RANGE (ts);
CREATE INDEX agent_heartbeats_key_ts ON agent_heartbeats (key_id, ts DESC);

-- Alerts: at most one unresolved event per (site, subject, type); the
-- subject is a miner id, or 'collector:<key id>' for agent_offline.
CREATE TABLE events (
    id              int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         int4 NOT NULL,
    subject         text NOT NULL,
    event_type      text NOT NULL CHECK (event_type IN
                    ('miner_offline', 'high_temperature', 'hashrate_drop', 'command_failed', 'agent_offline')),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    message         text NOT NULL,
    details         jsonb,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text
);
CREATE UNIQUE INDEX events_one_open ON events (site_id, subject, event_type)
    WHERE status <> 'resolved';
CREATE INDEX events_unresolved ON events (site_id, severity) WHERE status <> 'resolved';

-- The latest sample per miner, upserted from memory every few seconds
-- (coalesced: a miner costs at most one write per flush interval). Every
-- flush rewrites the row; only the primary key is indexed and pages keep
-- room (fillfactor 50), so those are HOT updates: no index churn, and the
-- space of old versions is reused page by page without waiting for vacuum.
CREATE TABLE miner_live (
    site_id                int4 NOT NULL,
    miner_id               text NOT NULL,
    ts                     timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    online                 bool,
    ip_address             text,
    model                  text,
    hashrate_ghs           float8,
    hashrate_expected_ghs  float8,
    temperature_avg        float4,
    temperature_max        float4,
    fan_max_rpm            int4,
    power_consumption      float4,
    efficiency             float4,
    accepted_shares        int8,
    rejected_shares        int8,
    hardware_errors        int8,
    uptime_seconds         int8,
    pool_url               text,
    worker_name            text,
    boards_total           int2,
    boards_healthy         int2,
    overall_health         text,
    firmware_version       text,
    error_message          text,
    PRIMARY KEY (site_id, miner_id)
) WITH (fillfactor = 50);
