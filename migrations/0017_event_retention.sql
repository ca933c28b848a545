-- The sweeper drops events older than a week whose deliveries are all finished (and those
-- deliveries and attempts with them): this index finds them without reading the whole outbox.
CREATE INDEX events_at ON events (at);
