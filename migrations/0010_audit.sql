-- The audit trail: one row per change of a model, version, job or dataset, in its tenant.
--
-- Entries are written by triggers on the changed tables, not by the service's code: no code path
-- can forget its entry, and an entry commits or rolls back with its change by construction (it
-- is a row of the same transaction). The triggers run as the role that made the change
-- (`models_service`), so the audit row passes the same row-level security as the change: its
-- tenant is the changed row's, which is the transaction's. The actor and the request id come
-- from the transaction's `app.actor` and `app.request_id` (the worker sets those of the request
-- that submitted the job); a change made with no actor set (a migration) is by 'system'.
--
-- Append-only: the service may read and add entries, never change or remove them; the
-- maintenance role has no right on the table at all.
--
-- What is recorded, with a small summary of named fields (never settings, features, artifacts,
-- metrics or data; for changes, only the fields that changed):
--   models             model.created, model.updated (metadata), version.activated
--                      (current_version moved; the resource is the version now current),
--                      model.deleted
--   model_versions     version.created
--   jobs               job.created, job.cancelled. The jobs a model's delete cancels are
--                      recorded too: they are real cancels, and each names its job.
--                      Routine bookkeeping (running, succeeded, failed, requeued, heartbeats,
--                      progress) is not a change anyone made and is not recorded; those
--                      updates do not even call a trigger function (WHEN clauses), so the
--                      sweeper's updates as `models_maintenance` never try to write here.
--   dataset_catalogue  dataset.created, dataset.updated (metadata), dataset.rows_added and
--                      dataset.rows_deleted (row_count moved; `delta` is the change),
--                      dataset.deleted
-- An update that changes nothing recorded (only `updated_at`) writes no entry.

CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     text NOT NULL DEFAULT current_setting('app.tenant') CHECK (tenant <> ''),
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''),
                                              'system'),
    action     text NOT NULL,
    resource   text NOT NULL,
    request_id text DEFAULT nullif(current_setting('app.request_id', true), ''),
    before     jsonb,
    after      jsonb
);

-- The list's default order (newest first) and filters on `at`, within the caller's tenant.
CREATE INDEX audit_log_tenant_at ON audit_log (tenant, at DESC, id DESC);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON audit_log TO models_service
    USING (tenant = current_setting('app.tenant', true))
    WITH CHECK (tenant = current_setting('app.tenant', true));
GRANT SELECT, INSERT ON audit_log TO models_service;

-- The one writer of entries; actor, request id and time come from the columns' defaults.
CREATE FUNCTION audit_write(tenant text, action text, resource text, before jsonb, after jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO audit_log (tenant, action, resource, before, after) VALUES ($1, $2, $3, $4, $5)
$$;

-- The keys whose values differ between two summaries: (before, after), each holding only those.
CREATE FUNCTION audit_diff(old jsonb, new jsonb, OUT before jsonb, OUT after jsonb)
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, old -> k), '{}'),
           coalesce(jsonb_object_agg(k, new -> k), '{}')
    FROM jsonb_object_keys(new) AS k
    WHERE old -> k IS DISTINCT FROM new -> k
$$;

-- Models ------------------------------------------------------------------------------------

CREATE FUNCTION audit_model_summary(m models) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', m.name, 'model_type', m.model_type, 'title', m.title,
        'description', m.description, 'tags', to_jsonb(m.tags), 'source', m.source,
        'target', m.target)
$$;

CREATE FUNCTION audit_models() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    diff record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_write(NEW.tenant, 'model.created', 'models/' || NEW.name, NULL,
                            audit_model_summary(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM audit_write(OLD.tenant, 'model.deleted', 'models/' || OLD.name,
                            audit_model_summary(OLD)
                                || jsonb_build_object('current_version', OLD.current_version),
                            NULL);
    ELSE
        SELECT * INTO diff FROM audit_diff(audit_model_summary(OLD), audit_model_summary(NEW));
        IF diff.after <> '{}' THEN
            PERFORM audit_write(NEW.tenant, 'model.updated', 'models/' || NEW.name,
                                diff.before, diff.after);
        END IF;
        IF NEW.current_version IS DISTINCT FROM OLD.current_version THEN
            PERFORM audit_write(NEW.tenant, 'version.activated',
                                'models/' || NEW.name || '/versions/' || NEW.current_version,
                                jsonb_build_object('current_version', OLD.current_version),
                                jsonb_build_object('current_version', NEW.current_version));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_insert_delete AFTER INSERT OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION audit_models();
CREATE TRIGGER audit_update AFTER UPDATE ON models
    FOR EACH ROW
    WHEN ((OLD.name, OLD.model_type, OLD.title, OLD.description, OLD.tags, OLD.source,
           OLD.target, OLD.current_version)
          IS DISTINCT FROM
          (NEW.name, NEW.model_type, NEW.title, NEW.description, NEW.tags, NEW.source,
           NEW.target, NEW.current_version))
    EXECUTE FUNCTION audit_models();

-- Versions ----------------------------------------------------------------------------------

CREATE FUNCTION audit_model_versions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_name text := (SELECT name FROM models WHERE id = NEW.model_id);
BEGIN
    PERFORM audit_write(
        NEW.tenant, 'version.created',
        'models/' || model_name || '/versions/' || NEW.version, NULL,
        jsonb_build_object('version', NEW.version, 'kind', NEW.kind,
                           'parent_version', NEW.parent_version, 'rows', NEW.rows,
                           'job', NEW.job_id));
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_insert AFTER INSERT ON model_versions
    FOR EACH ROW EXECUTE FUNCTION audit_model_versions();

-- Jobs --------------------------------------------------------------------------------------

CREATE FUNCTION audit_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_write(NEW.tenant, 'job.created', 'jobs/' || NEW.id, NULL,
                            jsonb_build_object('kind', NEW.kind, 'model', NEW.model_name,
                                               'status', NEW.status));
    ELSE
        PERFORM audit_write(NEW.tenant, 'job.cancelled', 'jobs/' || NEW.id,
                            jsonb_build_object('status', OLD.status),
                            jsonb_build_object('status', NEW.status));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION audit_jobs();
CREATE TRIGGER audit_cancel AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status = 'cancelled' AND OLD.status IS DISTINCT FROM 'cancelled')
    EXECUTE FUNCTION audit_jobs();

-- Datasets ----------------------------------------------------------------------------------

CREATE FUNCTION audit_dataset_summary(d dataset_catalogue) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', d.name, 'title', d.title, 'description', d.description,
        'tags', to_jsonb(d.tags), 'source', d.source)
$$;

CREATE FUNCTION audit_datasets() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    diff record;
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_write(NEW.tenant, 'dataset.created', 'datasets/' || NEW.name, NULL,
                            audit_dataset_summary(NEW)
                                || jsonb_build_object('row_count', NEW.row_count));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM audit_write(OLD.tenant, 'dataset.deleted', 'datasets/' || OLD.name,
                            audit_dataset_summary(OLD)
                                || jsonb_build_object('row_count', OLD.row_count),
                            NULL);
    ELSE
        SELECT * INTO diff FROM audit_diff(audit_dataset_summary(OLD), audit_dataset_summary(NEW));
        IF diff.after <> '{}' THEN
            PERFORM audit_write(NEW.tenant, 'dataset.updated', 'datasets/' || NEW.name,
                                diff.before, diff.after);
        END IF;
        delta := NEW.row_count - OLD.row_count;
        IF delta <> 0 THEN
            PERFORM audit_write(
                NEW.tenant,
                CASE WHEN delta > 0 THEN 'dataset.rows_added' ELSE 'dataset.rows_deleted' END,
                'datasets/' || NEW.name,
                jsonb_build_object('row_count', OLD.row_count),
                jsonb_build_object('row_count', NEW.row_count, 'delta', delta));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_insert_delete AFTER INSERT OR DELETE ON dataset_catalogue
    FOR EACH ROW EXECUTE FUNCTION audit_datasets();
CREATE TRIGGER audit_update AFTER UPDATE ON dataset_catalogue
    FOR EACH ROW
    WHEN ((OLD.name, OLD.title, OLD.description, OLD.tags, OLD.source, OLD.row_count)
          IS DISTINCT FROM
          (NEW.name, NEW.title, NEW.description, NEW.tags, NEW.source, NEW.row_count))
    EXECUTE FUNCTION audit_datasets();
