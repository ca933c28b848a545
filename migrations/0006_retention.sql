-- Idempotency keys belong to a model (they go with it) and expire; training rows that no version
-- and no live job uses can be found quickly and dropped.

ALTER TABLE idempotency_keys
    ADD COLUMN model_id bigint REFERENCES models (id) ON DELETE CASCADE;
CREATE INDEX idempotency_keys_model_idx ON idempotency_keys (model_id);

CREATE INDEX model_versions_batch_ids_gin ON model_versions USING gin (batch_ids);
CREATE INDEX training_batches_created_at_idx ON training_batches (created_at);
