-- Service alert rules evaluated on committed metrics_aggregated rows, the
-- alerts they open, and the latest state of each service seen in the rows.

-- A rule: `metric` is a numeric column of metrics_aggregated (checked by
-- adit against the declaration, not here, so a declared column added later
-- needs no migration); `service_name` NULL means every service.
CREATE TABLE alert_rules (
    id            int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    service_name  text,
    metric        text NOT NULL,
    operator      text NOT NULL CHECK (operator IN
                  ('greater_than', 'greater_equal', 'less_than', 'less_equal', 'equal')),
    threshold     float8 NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    for_seconds   int8 NOT NULL DEFAULT 0 CHECK (for_seconds >= 0),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One open alert per (rule, service, endpoint), whichever adit node saw the
-- breach first: the others' INSERT … ON CONFLICT DO NOTHING finds this row.
CREATE TABLE active_alerts (
    id            int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id       int8 NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    service_name  text NOT NULL,
    api_endpoint  text NOT NULL,
    current_value float8 NOT NULL,
    threshold     float8 NOT NULL,
    severity      text NOT NULL,
    message       text NOT NULL,
    started_at    timestamptz NOT NULL,
    resolved_at   timestamptz
);
CREATE UNIQUE INDEX active_alerts_one_open ON active_alerts (rule_id, service_name, api_endpoint)
    WHERE resolved_at IS NULL;
CREATE INDEX active_alerts_resolved ON active_alerts (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX active_alerts_started ON active_alerts (started_at);

-- The latest of each service: when its newest row was stamped, the
-- endpoints seen, the newest row's values. Status (active/stale) is
-- computed when read, from last_seen.
CREATE TABLE service_info (
    service_name  text PRIMARY KEY,
    last_seen     timestamptz NOT NULL,
    endpoints     text[] NOT NULL DEFAULT '{}',
    latest        jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now()
);
