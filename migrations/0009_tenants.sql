-- Tenants, isolated by PostgreSQL itself.
--
-- Every owned row carries `tenant`. Row-level security, forced so that the tables' owner is held
-- to it too, shows a transaction only the rows of the tenant it set with
-- `SET LOCAL app.tenant` (a transaction that set none sees no owned row and can write none).
-- The service runs its statements as `models_service`, a role that is not a superuser and
-- cannot bypass row-level security; the worker's sweeper and retention, which look across
-- tenants by design, switch to `models_maintenance` for their transaction and are granted only
-- what they do. Per-dataset tables have no tenant column: each one's policy lets a row through
-- only when the tenant's catalogue can see that dataset's row.
--
-- Rows stored before this belong to the default tenant: `app.default_tenant` when the migrator
-- sets it (from `auth.default_tenant`), else 'default'.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'models_service') THEN
        CREATE ROLE models_service NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'models_maintenance') THEN
        CREATE ROLE models_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

CREATE FUNCTION pg_temp.add_tenant(owned regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    existing text := coalesce(nullif(current_setting('app.default_tenant', true), ''), 'default');
BEGIN
    EXECUTE format('ALTER TABLE %s ADD COLUMN tenant text NOT NULL DEFAULT %L CHECK (tenant <> %L)',
                   owned, existing, '');
    -- New rows take the transaction's tenant; with none set, an insert fails instead of guessing.
    EXECUTE format('ALTER TABLE %s ALTER COLUMN tenant SET DEFAULT current_setting(%L)',
                   owned, 'app.tenant');
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', owned);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', owned);
    EXECUTE format(
        'CREATE POLICY tenant_rows ON %s TO models_service '
        'USING (tenant = current_setting(%L, true)) WITH CHECK (tenant = current_setting(%L, true))',
        owned, 'app.tenant', 'app.tenant');
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO models_service', owned);
END
$$;

SELECT pg_temp.add_tenant(t) FROM unnest(ARRAY[
    'models', 'jobs', 'training_batches', 'model_versions', 'artifacts', 'dataset_catalogue',
    'idempotency_keys'
]::regclass[]) AS t;

-- Names are unique per tenant: two tenants may both have `iris`.
DROP INDEX models_name_key;
CREATE UNIQUE INDEX models_tenant_name_key ON models (tenant, name);
DROP INDEX dataset_catalogue_name_key;
CREATE UNIQUE INDEX dataset_catalogue_tenant_name_key ON dataset_catalogue (tenant, name);

-- An idempotency key belongs to a caller, and a caller is a tenant's `sub`.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant, principal, key, method, path);

-- What the sweeper and retention do across tenants, and nothing else.
CREATE POLICY maintenance ON jobs TO models_maintenance USING (true);
CREATE POLICY maintenance ON training_batches TO models_maintenance USING (true);
CREATE POLICY maintenance ON idempotency_keys TO models_maintenance USING (true);
CREATE POLICY maintenance ON model_versions TO models_maintenance USING (true);
GRANT SELECT, UPDATE ON jobs TO models_maintenance;
GRANT SELECT, DELETE ON training_batches, idempotency_keys TO models_maintenance;
GRANT SELECT ON model_versions TO models_maintenance;

-- Not owned by anyone: the type catalogue (synced from code at start) and migration records.
GRANT SELECT, INSERT, UPDATE, DELETE ON model_types TO models_service;
GRANT SELECT ON schema_migrations TO models_service;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO models_service;
GRANT USAGE ON SCHEMA public TO models_service, models_maintenance;
GRANT USAGE, CREATE ON SCHEMA datasets TO models_service;

-- The view reads its tables as the caller, so their policies apply (a view otherwise reads them
-- as its owner, which may bypass row-level security).
CREATE OR REPLACE VIEW models_view AS
SELECT m.id, m.name, m.model_type, m.title, m.description, m.tags, m.source, m.settings,
       m.features, m.target, t.can_input, t.can_output, t.can_update, m.created_by,
       m.created_at, m.updated_at, m.current_version,
       coalesce((
           SELECT j.status FROM jobs j
           WHERE j.model_id = m.id
           ORDER BY (j.status IN ('queued', 'running')) DESC, j.created_at DESC
           LIMIT 1
       ), 'idle') AS status,
       (
           SELECT j.id FROM jobs j
           WHERE j.model_id = m.id
           ORDER BY (j.status IN ('queued', 'running')) DESC, j.created_at DESC
           LIMIT 1
       ) AS job_id,
       m.tenant
FROM models m
JOIN model_types t ON t.name = m.model_type;
ALTER VIEW models_view SET (security_invoker = true);
GRANT SELECT ON models_view TO models_service;

-- A dataset's own table shows its rows only to the tenant whose catalogue holds the dataset.
-- The service creates these tables (as `models_service`, their owner) and calls this function
-- once the table is filled: COPY FROM refuses tables under row-level security.
CREATE FUNCTION guard_dataset_table(dataset_id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tbl text := format('datasets.%I', 'd_' || dataset_id);
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY catalogue_row ON %s '
        'USING (EXISTS (SELECT FROM public.dataset_catalogue c WHERE c.id = %s))',
        tbl, dataset_id);
END
$$;
GRANT EXECUTE ON FUNCTION guard_dataset_table(bigint) TO models_service;

SELECT guard_dataset_table(id) FROM dataset_catalogue
WHERE to_regclass(format('datasets.%I', 'd_' || id)) IS NOT NULL;

DO $$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN
        SELECT format('datasets.%I', 'd_' || id)::regclass FROM dataset_catalogue
        WHERE to_regclass(format('datasets.%I', 'd_' || id)) IS NOT NULL
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO models_service', tbl);
    END LOOP;
END
$$;

-- The request that submitted a job: the worker acts with it, so what a job changes is traced
-- (and audited) back to that request.
ALTER TABLE jobs ADD COLUMN request_id text DEFAULT nullif(current_setting('app.request_id', true), '');
