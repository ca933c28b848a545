-- Indexes for the most common list filters: `tags CONTAINS x` (compiled to `tags @> ARRAY[x]`)
-- and who created what.

CREATE INDEX models_tags_gin ON models USING gin (tags);
CREATE INDEX models_created_by_idx ON models (created_by);
CREATE INDEX dataset_catalogue_tags_gin ON dataset_catalogue USING gin (tags);
CREATE INDEX dataset_catalogue_created_by_idx ON dataset_catalogue (created_by);
