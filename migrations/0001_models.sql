-- The model-type catalogue (synced from code at every start) and named model instances.

CREATE TABLE model_types (
    name               text PRIMARY KEY,
    task               text NOT NULL,
    description        text NOT NULL,
    input_description  text NOT NULL,
    output_description text NOT NULL,
    update_description text NOT NULL,
    can_input          boolean NOT NULL,
    can_output         boolean NOT NULL,
    can_update         boolean NOT NULL,
    incremental        boolean NOT NULL,
    supervised         boolean NOT NULL,
    outputs            text[] NOT NULL,
    hyperparameters    jsonb NOT NULL,
    docs_url           text NOT NULL,
    provider           text NOT NULL,
    synced_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE models (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    model_type      text NOT NULL REFERENCES model_types (name),
    title           text,
    description     text,
    tags            text[] NOT NULL DEFAULT '{}',
    source          text,
    settings        jsonb NOT NULL DEFAULT '{}',
    features        text[],
    target          text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    current_version integer
);

-- Decides duplicate names: concurrent creates of one name give one row and unique violations.
CREATE UNIQUE INDEX models_name_key ON models (name);
CREATE INDEX models_model_type_idx ON models (model_type);
CREATE INDEX models_created_at_idx ON models (created_at);
