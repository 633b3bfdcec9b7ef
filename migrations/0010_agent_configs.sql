-- adit 0010: central collector configuration (seed 000 agent_configs).
--
-- Admins publish versioned collector configurations: draft -> active ->
-- deprecated, a deprecated one may be activated again (rollback). A config
-- applies to every collector (`all`) or to the collector keys listed in
-- `agent_ids` (`specific`). A collector's effective configuration is the
-- most recently activated active config listing its key id, else the most
-- recently activated active `all` config, else none (its built-in
-- defaults). At most one `all` config is active at a time: activating one
-- deprecates the previous one (under a table lock), and a partial unique
-- index makes that an invariant of the table.
--
-- A handful of rows, read once per heartbeat: no index beyond the keys.
-- Kept for ever (no retention): the history is what a rollback activates.
CREATE TABLE agent_configs (
    id              int4 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version         text NOT NULL UNIQUE CHECK (version ~ '^[A-Za-z0-9._-]{1,20}$'),
    -- The configuration document as the admin sent it (checked by adit).
    config_data     jsonb NOT NULL CHECK (jsonb_typeof(config_data) = 'object'),
    applies_to      text NOT NULL DEFAULT 'all' CHECK (applies_to IN ('all', 'specific')),
    -- Collector key ids; non-empty exactly when applies_to = 'specific'.
    agent_ids       int4[],
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'deprecated')),
    change_summary  text,
    -- The admin key that created it.
    created_by      int4,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    deprecated_at   timestamptz,
    CHECK ((applies_to = 'specific') = (coalesce(cardinality(agent_ids), 0) > 0)),
    CHECK (status = 'draft' OR activated_at IS NOT NULL)
);
CREATE UNIQUE INDEX agent_configs_one_active_all ON agent_configs (applies_to)
    WHERE status = 'active' AND applies_to = 'all';

-- The config version each collector says it runs (its last heartbeat; NULL:
-- it runs no central configuration), beside what it was sent.
ALTER TABLE collector_agents ADD COLUMN config_version text;
ALTER TABLE agent_heartbeats ADD COLUMN config_version text;
