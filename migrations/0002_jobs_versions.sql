-- Background jobs, training data, immutable versions, their artifacts, and idempotency keys.

CREATE TABLE jobs (
    id           uuid PRIMARY KEY,
    model_id     bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    model_name   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('train', 'update', 'batch_predict')),
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    spec         jsonb NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    heartbeat_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    dispatches   integer NOT NULL DEFAULT 0,
    progress     real,
    error        jsonb,
    result       jsonb,
    worker       text,
    child_pid    integer
);

-- At most one active job per model, decided by the database rather than check-then-insert.
CREATE UNIQUE INDEX jobs_one_active_per_model ON jobs (model_id) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_model_created_idx ON jobs (model_id, created_at DESC);
CREATE INDEX jobs_status_idx ON jobs (status) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_created_at_idx ON jobs (created_at);

-- Rows a job trains on, stored once as a compact msgpack batch; never sent through Redis.
CREATE TABLE training_batches (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id   bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    job_id     uuid REFERENCES jobs (id) ON DELETE SET NULL,
    columns    text[] NOT NULL,
    row_count  integer NOT NULL,
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX training_batches_model_idx ON training_batches (model_id);
CREATE INDEX training_batches_job_idx ON training_batches (job_id);

CREATE TABLE model_versions (
    model_id         bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL,
    job_id           uuid,
    kind             text NOT NULL CHECK (kind IN ('train', 'update')),
    parent_version   integer,
    rows             bigint NOT NULL,
    source           jsonb NOT NULL,
    metrics          jsonb NOT NULL DEFAULT '{}',
    features         text[] NOT NULL,
    feature_kinds    jsonb NOT NULL,
    target           text,
    classes          jsonb,
    outputs          text[] NOT NULL,
    batch_ids        bigint[] NOT NULL,
    library_versions jsonb NOT NULL,
    artifact_sha256  text NOT NULL,
    artifact_bytes   bigint NOT NULL,
    artifact_hmac    text NOT NULL,
    PRIMARY KEY (model_id, version)
);

-- Artifact bytes live apart from version metadata so listing versions never reads them.
CREATE TABLE artifacts (
    model_id bigint NOT NULL,
    version  integer NOT NULL,
    data     bytea NOT NULL,
    PRIMARY KEY (model_id, version),
    FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version) ON DELETE CASCADE
);
ALTER TABLE artifacts ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE models
    ADD CONSTRAINT models_current_version_fkey FOREIGN KEY (id, current_version)
    REFERENCES model_versions (model_id, version) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE idempotency_keys (
    principal    text NOT NULL,
    key          text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    body         bytea NOT NULL,
    location     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key, method, path)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- What model lists and `GET /models/{name}` read: a model with its type's capabilities and its
-- status, which is the active job's status, else the latest job's, else 'idle'.
CREATE VIEW models_view AS
SELECT m.id, m.name, m.model_type, m.title, m.description, m.tags, m.source, m.settings,
       m.features, m.target, t.can_input, t.can_output, t.can_update, m.created_by,
       m.created_at, m.updated_at, m.current_version,
       coalesce(j.status, 'idle') AS status, j.id AS job_id
FROM models m
JOIN model_types t ON t.name = m.model_type
LEFT JOIN LATERAL (
    SELECT id, status FROM jobs
    WHERE jobs.model_id = m.id
    ORDER BY (status IN ('queued', 'running')) DESC, created_at DESC
    LIMIT 1
) j ON true;
