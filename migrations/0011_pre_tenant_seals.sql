-- Artifacts sealed before tenants, by the rule of artifact key ids (0008), were sealed for the
-- tenant `default`, the only one there was. 0009 moved their rows to `auth.default_tenant`, which
-- may have another name, so those rows now record the tenant their seal names. NULL, as on every
-- version sealed since, means the row's own tenant. Such a seal binds model and version but no
-- tenant, as the v1 tags (which bind nothing but the bytes) never did either.

ALTER TABLE model_versions ADD COLUMN artifact_tenant text CHECK (artifact_tenant = 'default');

-- Row-level security is forced on the table, which would hide every row from an owner that is
-- not a superuser (it has no policy): lifted for this transaction only.
ALTER TABLE model_versions NO FORCE ROW LEVEL SECURITY;
UPDATE model_versions SET artifact_tenant = 'default'
WHERE artifact_key_id IS NOT NULL
  AND created_at < (SELECT applied_at FROM schema_migrations WHERE version = '0009_tenants');
ALTER TABLE model_versions FORCE ROW LEVEL SECURITY;
