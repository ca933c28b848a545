-- What a fit really used and what it warned about, shown on each version. Versions stored before
-- this were not recorded: their settings stay unknown (null) and their warnings an empty list.

ALTER TABLE model_versions
    ADD COLUMN settings jsonb,
    ADD COLUMN warnings jsonb NOT NULL DEFAULT '[]';
