-- Per-dataset tables belong to `models_datasets`, a role nobody logs in as and the service's
-- role is no member of. Their owner could lift their row-level security (`NO FORCE`, `DISABLE`, `DROP
-- POLICY`) or drop them, so the role that runs the service's statements must not own them: a
-- statement of one tenant's request could otherwise read or drop another tenant's dataset.
--
-- The service still creates a new table and fills it (COPY refuses a table under row-level
-- security); `guard_dataset_table` then guards it and hands it over, leaving the service
-- reads and row changes only (no TRUNCATE: it ignores row-level security). Dropping one goes
-- through `drop_dataset_table`. Both run with their definer's rights (the role that migrates)
-- and act only on a dataset of the caller's tenant.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'models_datasets') THEN
        CREATE ROLE models_datasets NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    -- Handing a table to a role takes membership in it, unless one is a superuser. A role that
    -- migrates owns every other table already, so this gives it nothing it could not do; the
    -- role the service logs in as must then be another one for the guard to hold against it.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT models_datasets TO %I', current_user);
        -- The functions below check the caller's catalogue row as this role; row-level
        -- security, forced, would otherwise show it none (a superuser sees every row).
        EXECUTE format(
            'CREATE POLICY dataset_functions ON dataset_catalogue TO %I USING (tenant = %s)',
            current_user, 'current_setting(''app.tenant'', true)');
    END IF;
END
$$;

-- An owner needs CREATE on its tables' schema (PostgreSQL checks it when handing one over).
GRANT USAGE, CREATE ON SCHEMA datasets TO models_datasets;

CREATE OR REPLACE FUNCTION guard_dataset_table(dataset_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass := format('datasets.%I', 'd_' || dataset_id)::regclass;
BEGIN
    IF NOT EXISTS (
        SELECT FROM public.dataset_catalogue c
        WHERE c.id = dataset_id AND c.tenant = current_setting('app.tenant', true)
    ) THEN
        RAISE EXCEPTION 'not a dataset of this tenant: %', tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY catalogue_row ON %s '
        'USING (EXISTS (SELECT FROM public.dataset_catalogue c WHERE c.id = %s))',
        tbl, dataset_id);
    EXECUTE format('ALTER TABLE %s OWNER TO models_datasets', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO models_service', tbl);
END
$$;
REVOKE ALL ON FUNCTION guard_dataset_table(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION guard_dataset_table(bigint) TO models_service;

CREATE FUNCTION drop_dataset_table(dataset_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl text := format('datasets.%I', 'd_' || dataset_id);
BEGIN
    IF NOT EXISTS (
        SELECT FROM public.dataset_catalogue c
        WHERE c.id = dataset_id AND c.tenant = current_setting('app.tenant', true)
    ) THEN
        RAISE EXCEPTION 'not a dataset of this tenant: %', tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %s', tbl);
END
$$;
REVOKE ALL ON FUNCTION drop_dataset_table(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drop_dataset_table(bigint) TO models_service;

DO $$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN
        SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'datasets' AND c.relkind = 'r'
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO models_datasets', tbl);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO models_service', tbl);
    END LOOP;
END
$$;
