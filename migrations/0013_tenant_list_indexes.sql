-- List filters and orders run within the caller's tenant, so their indexes lead with `tenant`:
-- a list never fetches another tenant's rows only for the row-level policy to drop them.
-- (The `tags` GIN indexes stay as they are: the tenant's rows are then picked by the policy from
-- the rows holding the tag.)

DROP INDEX models_created_by_idx;
CREATE INDEX models_tenant_created_by_idx ON models (tenant, created_by);
DROP INDEX models_created_at_idx;
CREATE INDEX models_tenant_created_at_idx ON models (tenant, created_at);
DROP INDEX dataset_catalogue_created_by_idx;
CREATE INDEX dataset_catalogue_tenant_created_by_idx ON dataset_catalogue (tenant, created_by);
DROP INDEX dataset_catalogue_created_at_idx;
CREATE INDEX dataset_catalogue_tenant_created_at_idx ON dataset_catalogue (tenant, created_at);
DROP INDEX jobs_created_at_idx;
CREATE INDEX jobs_tenant_created_at_idx ON jobs (tenant, created_at);
