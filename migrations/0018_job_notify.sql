-- Job changes for `GET /jobs/{id}/events`: a notification per change a client can see.
--
-- Only a job's final states are events in the outbox; queued -> running and progress are not,
-- yet a stream of the job shows them. Each api process LISTENs once and wakes the streams of
-- that job, which read the row: no stream polls. `NOTIFY` is delivered at commit (and not at
-- all on rollback), and identical payloads within one transaction fold into one.
-- Heartbeats (`heartbeat_at`) and the worker's bookkeeping columns do not notify: a stream
-- shows nothing for them.

CREATE FUNCTION notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('job_changed', NEW.tenant || '/' || NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_changed AFTER UPDATE ON jobs
    FOR EACH ROW
    WHEN ((OLD.status, OLD.progress, OLD.attempts, OLD.started_at, OLD.finished_at, OLD.error,
           OLD.result)
          IS DISTINCT FROM
          (NEW.status, NEW.progress, NEW.attempts, NEW.started_at, NEW.finished_at, NEW.error,
           NEW.result))
    EXECUTE FUNCTION notify_job_changed();
