-- The registry: revisions for optimistic concurrency, aliases, and the traffic split.
--
-- Revisions come from one sequence shared by models, aliases and traffic, so a revision is
-- never reused: a resource deleted and made again under the same name never matches an `ETag`
-- taken from the old one. A model's revision moves with every change of its row (metadata,
-- current version); a job's progress is not a change of the model row and leaves it alone.

CREATE SEQUENCE registry_revisions;
GRANT USAGE ON SEQUENCE registry_revisions TO models_service;

ALTER TABLE models ADD COLUMN revision bigint NOT NULL DEFAULT nextval('registry_revisions');

CREATE FUNCTION next_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('registry_revisions');
    RETURN NEW;
END
$$;

-- Every update, also one that writes the same values: an activation of the version already
-- current is still a decision that a concurrent `If-Match` must not silently repeat.
CREATE TRIGGER next_revision BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION next_revision();

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
       m.tenant,
       m.revision
FROM models m
JOIN model_types t ON t.name = m.model_type;
ALTER VIEW models_view SET (security_invoker = true);

-- Aliases -----------------------------------------------------------------------------------

-- A name for one version of one model ("production"). The version must exist; a model's delete
-- takes its aliases with it.
CREATE TABLE model_aliases (
    tenant     text NOT NULL DEFAULT current_setting('app.tenant') CHECK (tenant <> ''),
    model_id   bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    alias      text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]{0,62}$'),
    version    integer NOT NULL,
    revision   bigint NOT NULL DEFAULT nextval('registry_revisions'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''),
                                              'system'),
    PRIMARY KEY (model_id, alias),
    FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version)
        ON DELETE CASCADE
);

-- Traffic -----------------------------------------------------------------------------------

-- How predictions that name no version or alias are shared between versions, and which
-- versions see them as shadows. No row: every such prediction goes to the current version.
-- `split` is [{"version": N, "weight": W}, ...], weights summing to 100 (checked by the service,
-- which also checks that every version exists, under the model's row lock).
CREATE TABLE model_traffic (
    tenant     text NOT NULL DEFAULT current_setting('app.tenant') CHECK (tenant <> ''),
    model_id   bigint PRIMARY KEY REFERENCES models (id) ON DELETE CASCADE,
    split      jsonb NOT NULL CHECK (jsonb_typeof(split) = 'array'),
    shadow     integer[] NOT NULL DEFAULT '{}',
    revision   bigint NOT NULL DEFAULT nextval('registry_revisions'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''),
                                              'system')
);

DO $$
DECLARE
    owned text;
BEGIN
    FOREACH owned IN ARRAY ARRAY['model_aliases', 'model_traffic'] LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', owned);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', owned);
        EXECUTE format(
            'CREATE POLICY tenant_rows ON %s TO models_service '
            'USING (tenant = current_setting(%L, true)) '
            'WITH CHECK (tenant = current_setting(%L, true))',
            owned, 'app.tenant', 'app.tenant');
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO models_service', owned);
        EXECUTE format(
            'CREATE TRIGGER next_revision BEFORE UPDATE ON %s '
            'FOR EACH ROW EXECUTE FUNCTION next_revision()', owned);
    END LOOP;
END
$$;

-- Audit: alias moves and traffic changes ----------------------------------------------------

-- A model's delete removes its aliases and traffic by cascade; that delete is recorded once, as
-- model.deleted, so rows whose model is already gone write nothing.
CREATE FUNCTION audit_model_aliases() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_name text := (SELECT name FROM models
                        WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id
                                        ELSE NEW.model_id END);
BEGIN
    IF model_name IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM audit_write(OLD.tenant, 'alias.deleted',
                            'models/' || model_name || '/aliases/' || OLD.alias,
                            jsonb_build_object('version', OLD.version), NULL);
    ELSE
        PERFORM audit_write(
            NEW.tenant, 'alias.moved', 'models/' || model_name || '/aliases/' || NEW.alias,
            CASE WHEN TG_OP = 'UPDATE' THEN jsonb_build_object('version', OLD.version) END,
            jsonb_build_object('version', NEW.version));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE ON model_aliases
    FOR EACH ROW EXECUTE FUNCTION audit_model_aliases();

CREATE FUNCTION audit_model_traffic() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_name text := (SELECT name FROM models
                        WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id
                                        ELSE NEW.model_id END);
BEGIN
    IF model_name IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM audit_write(OLD.tenant, 'traffic.deleted', 'models/' || model_name || '/traffic',
                            jsonb_build_object('split', OLD.split, 'shadow', to_jsonb(OLD.shadow)),
                            NULL);
    ELSE
        PERFORM audit_write(
            NEW.tenant, 'traffic.changed', 'models/' || model_name || '/traffic',
            CASE WHEN TG_OP = 'UPDATE'
                 THEN jsonb_build_object('split', OLD.split, 'shadow', to_jsonb(OLD.shadow)) END,
            jsonb_build_object('split', NEW.split, 'shadow', to_jsonb(NEW.shadow)));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE ON model_traffic
    FOR EACH ROW EXECUTE FUNCTION audit_model_traffic();
