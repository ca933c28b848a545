-- The same view, with the model's status as scalar subqueries instead of a lateral join: when a
-- query does not read `status` or `job_id` (counts, most filters), PostgreSQL drops them unseen.

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
       ) AS job_id
FROM models m
JOIN model_types t ON t.name = m.model_type;
