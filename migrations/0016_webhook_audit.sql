-- The audit trail of webhooks: webhook.created and webhook.deleted, resource `webhooks/<id>`,
-- written by triggers in the change's transaction like every other entry (see 0010).
-- The summary names where events go and which ones (url, events, description), never the
-- signing secret, not even sealed.

CREATE FUNCTION audit_webhook_summary(w webhooks) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('url', w.url, 'events', to_jsonb(w.events),
                              'description', w.description)
$$;

CREATE FUNCTION audit_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM audit_write(NEW.tenant, 'webhook.created', 'webhooks/' || NEW.id, NULL,
                            audit_webhook_summary(NEW));
    ELSE
        PERFORM audit_write(OLD.tenant, 'webhook.deleted', 'webhooks/' || OLD.id,
                            audit_webhook_summary(OLD), NULL);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_insert_delete AFTER INSERT OR DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION audit_webhooks();
