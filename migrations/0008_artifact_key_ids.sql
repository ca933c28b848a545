-- Artifact tags now name the key that made them (so keys can rotate) and bind the bytes to
-- their tenant, model and version. Versions stored before this keep a NULL key id: that marks
-- the v1 scheme, an HMAC over the bytes alone, still verified under any configured key.

ALTER TABLE model_versions ADD COLUMN artifact_key_id text;
