-- The W3C trace context (`traceparent`, `tracestate`) of the request that submitted a job, so
-- the worker that runs it continues the same trace: submit -> queue -> fit -> version.
-- NULL when tracing was off or the request was not traced. Not part of any job answer.
ALTER TABLE jobs ADD COLUMN trace_context jsonb;
