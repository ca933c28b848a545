-- Events: the transactional outbox that webhooks and streams read.
--
-- An event row is written by a trigger on the changed table, in the change's own transaction:
-- no code path can forget it, a change that rolls back leaves none, and one that commits has
-- its event even if the process dies the next instant. The events are
--   job.succeeded, job.failed, job.cancelled   a job reached that final state
--   version.created                            a version was stored
--   alias.moved                                an alias was created or pointed elsewhere
--   dataset.created, dataset.deleted           a dataset was made or dropped
-- `data` is the resource as the API shows it (times as RFC 3339 UTC, like the API's).
--
-- The triggers are deferred to the commit: an event describes the row as committed (a dataset's
-- rows and columns, filled after its catalogue row was inserted), and is written last.
--
-- Order: `id` is a tenant's stream position (SSE `id:`, `Last-Event-ID`). Identities are
-- handed out at insert, not at commit, so two concurrent transactions could commit their events
-- out of id order, and a reader resuming after the higher one would skip the lower for good.
-- Each event insert therefore takes a per-tenant transaction lock first: a tenant's
-- event-writing commits happen one at a time, in id order. The lock is taken at commit, after
-- every other lock of the transaction, and the transactions are few (job ends, versions, alias
-- moves, datasets), never a prediction.
--
-- Every committed event wakes its readers with `NOTIFY events` (payload `tenant/id`), and is
-- fanned out, in the same transaction, to a pending delivery for each of the tenant's webhooks
-- that subscribe to its type.

CREATE TABLE events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    tenant   text NOT NULL DEFAULT current_setting('app.tenant') CHECK (tenant <> ''),
    type     text NOT NULL,
    subject  text NOT NULL,  -- the resource's path: jobs/<id>, models/<name>/versions/<n>, ...
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    data     jsonb NOT NULL
);
CREATE INDEX events_tenant_id ON events (tenant, id);
CREATE INDEX events_tenant_subject_id ON events (tenant, subject, id);

-- Webhooks: a tenant's receivers. The signing secret is stored encrypted (AES-256-GCM under
-- `webhooks.secret_key` from the environment, named by `secret_key_id`), so a dump of the
-- database alone cannot sign a delivery.
CREATE TABLE webhooks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant        text NOT NULL DEFAULT current_setting('app.tenant') CHECK (tenant <> ''),
    url           text NOT NULL,
    events        text[] NOT NULL,
    description   text,
    secret        bytea NOT NULL,
    secret_key_id text NOT NULL,
    created_by    text NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''),
                                                 'system'),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant_created_at ON webhooks (tenant, created_at);

-- One delivery per (webhook, event): what the worker still owes a receiver. `lease_until`
-- is a worker's claim on an attempt in flight; a worker killed mid-attempt leaves a lease that
-- expires, and the delivery is due again.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL DEFAULT current_setting('app.tenant') CHECK (tenant <> ''),
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (webhook_id, event)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Every attempt, as `GET /webhooks/{id}/deliveries` lists them.
CREATE TABLE webhook_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL CHECK (tenant <> ''),
    delivery_id     bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    webhook_id      uuid NOT NULL,
    attempt         integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    status_code     integer,
    error           text,
    duration_ms     real,
    next_attempt_at timestamptz  -- null: no retry (delivered, or given up)
);
CREATE INDEX webhook_attempts_webhook_id ON webhook_attempts (webhook_id, id DESC);

DO $$
DECLARE
    owned text;
BEGIN
    FOREACH owned IN ARRAY ARRAY['events', 'webhooks', 'webhook_deliveries', 'webhook_attempts']
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', owned);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', owned);
        EXECUTE format(
            'CREATE POLICY tenant_rows ON %s TO models_service '
            'USING (tenant = current_setting(%L, true)) '
            'WITH CHECK (tenant = current_setting(%L, true))',
            owned, 'app.tenant', 'app.tenant');
        -- The worker delivers for every tenant, and the sweeper's job updates write events.
        EXECUTE format('CREATE POLICY maintenance ON %s TO models_maintenance '
                       'USING (true) WITH CHECK (true)', owned);
    END LOOP;
END
$$;

-- The outbox is append-only for the service: events are facts.
GRANT SELECT, INSERT ON events TO models_service;
GRANT SELECT, INSERT, DELETE ON webhooks TO models_service;
GRANT SELECT, INSERT ON webhook_deliveries TO models_service;
GRANT SELECT ON webhook_attempts TO models_service;
GRANT SELECT, INSERT, DELETE ON events TO models_maintenance;
GRANT SELECT ON webhooks TO models_maintenance;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO models_maintenance;
GRANT SELECT, INSERT, DELETE ON webhook_attempts TO models_maintenance;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO models_service, models_maintenance;

-- The API's time format: RFC 3339 in UTC with a `Z`.
CREATE FUNCTION api_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The one writer of events; the caller passes the tenant of the changed row.
CREATE FUNCTION event_write(tenant text, type text, subject text, data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    position bigint;
    fanned integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('models-service:events'), hashtext($1));
    INSERT INTO events (tenant, type, subject, data) VALUES ($1, $2, $3, $4)
        RETURNING id INTO position;
    INSERT INTO webhook_deliveries (tenant, webhook_id, event)
        SELECT w.tenant, w.id, position FROM webhooks w
        WHERE w.tenant = $1 AND $2 = ANY (w.events);
    GET DIAGNOSTICS fanned = ROW_COUNT;
    PERFORM pg_notify('events', $1 || '/' || position);
    IF fanned > 0 THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
END
$$;

-- Jobs --------------------------------------------------------------------------------------

CREATE FUNCTION event_job_data(j jobs) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', j.id, 'model', j.model_name, 'kind', j.kind, 'status', j.status,
        'created_by', j.created_by, 'tenant', j.tenant, 'created_at', api_time(j.created_at),
        'started_at', api_time(j.started_at), 'finished_at', api_time(j.finished_at),
        'attempts', j.attempts, 'progress', j.progress, 'error', j.error, 'result', j.result)
$$;

CREATE FUNCTION event_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM event_write(NEW.tenant, 'job.' || NEW.status, 'jobs/' || NEW.id,
                        event_job_data(NEW));
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER event_final AFTER UPDATE OF status ON jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION event_jobs();

-- Versions ----------------------------------------------------------------------------------

CREATE FUNCTION event_model_versions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_name text := (SELECT name FROM models WHERE id = NEW.model_id);
BEGIN
    PERFORM event_write(
        NEW.tenant, 'version.created', 'models/' || model_name || '/versions/' || NEW.version,
        jsonb_build_object(
            'model', model_name, 'version', NEW.version, 'created_at', api_time(NEW.created_at),
            'created_by', NEW.created_by, 'tenant', NEW.tenant, 'job_id', NEW.job_id,
            'kind', NEW.kind, 'parent_version', NEW.parent_version, 'rows', NEW.rows,
            'source', NEW.source, 'metrics', NEW.metrics, 'features', to_jsonb(NEW.features),
            'target', NEW.target, 'classes', NEW.classes, 'outputs', to_jsonb(NEW.outputs),
            'artifact_sha256', NEW.artifact_sha256, 'artifact_bytes', NEW.artifact_bytes,
            'library_versions', NEW.library_versions, 'settings', NEW.settings,
            'warnings', to_jsonb(NEW.warnings)));
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER event_insert AFTER INSERT ON model_versions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION event_model_versions();

-- Aliases -----------------------------------------------------------------------------------

CREATE FUNCTION event_model_aliases() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_name text := (SELECT name FROM models WHERE id = NEW.model_id);
BEGIN
    PERFORM event_write(
        NEW.tenant, 'alias.moved', 'models/' || model_name || '/aliases/' || NEW.alias,
        jsonb_build_object(
            'model', model_name, 'alias', NEW.alias, 'version', NEW.version,
            'previous_version', CASE WHEN TG_OP = 'UPDATE' THEN OLD.version END,
            'updated_at', api_time(NEW.updated_at), 'updated_by', NEW.updated_by));
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER event_move AFTER INSERT OR UPDATE ON model_aliases
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION event_model_aliases();

-- Datasets ----------------------------------------------------------------------------------

CREATE FUNCTION event_dataset_data(d dataset_catalogue) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', d.name, 'title', d.title, 'description', d.description,
        'tags', to_jsonb(d.tags), 'source', d.source, 'columns', d.columns,
        'rows', d.row_count, 'created_by', d.created_by, 'tenant', d.tenant,
        'created_at', api_time(d.created_at), 'updated_at', api_time(d.updated_at))
$$;

CREATE FUNCTION event_datasets() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    committed dataset_catalogue;
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- As committed: rows and columns are filled after the insert. Made and dropped in one
        -- transaction: never seen, so no event.
        SELECT * INTO committed FROM dataset_catalogue WHERE id = NEW.id;
        IF FOUND THEN
            PERFORM event_write(NEW.tenant, 'dataset.created', 'datasets/' || NEW.name,
                                event_dataset_data(committed));
        END IF;
    ELSE
        PERFORM event_write(OLD.tenant, 'dataset.deleted', 'datasets/' || OLD.name,
                            event_dataset_data(OLD));
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER event_change AFTER INSERT OR DELETE ON dataset_catalogue
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION event_datasets();
