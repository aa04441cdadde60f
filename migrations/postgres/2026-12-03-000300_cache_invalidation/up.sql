-- Cross-instance cache invalidation. Every change that makes a token or a service key
-- cached by some instance stale sends a NOTIFY on `connecthub_invalidate` from a trigger,
-- so it is part of the transaction of the change whatever code (server, CLI, SQL by hand)
-- made it: PostgreSQL delivers it at commit and never for a rollback. Every instance
-- LISTENs (crates/core/src/invalidation.rs) and drops the entry; the cache TTL
-- (SERVICE_CACHE_SECS) stays the fallback. Payloads carry ids only, never a secret.
CREATE FUNCTION connecthub_notify_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
BEGIN
    -- TG_ARGV[0]: what changed ('client' or 'api_key'); TG_ARGV[1]: the column naming it.
    PERFORM pg_notify('connecthub_invalidate', TG_ARGV[0] || ':' || (changed ->> TG_ARGV[1]));
    RETURN NULL;
END
$$;

-- Clients: any change but the "last used" time, which is written every second for busy
-- clients and must not empty every instance's cache each time.
CREATE TRIGGER clients_invalidate_update AFTER UPDATE ON clients FOR EACH ROW
    WHEN ((to_jsonb(OLD) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at'))
    EXECUTE FUNCTION connecthub_notify_invalidate('client', 'id');
CREATE TRIGGER clients_invalidate_delete AFTER DELETE ON clients FOR EACH ROW
    EXECUTE FUNCTION connecthub_notify_invalidate('client', 'id');

-- Credentials: new tokens (a refresh, a reconnect, a disconnect wiping them), not the
-- refresh lease or the failure count.
CREATE TRIGGER credentials_invalidate_update AFTER UPDATE ON credentials FOR EACH ROW
    WHEN (OLD.access_token IS DISTINCT FROM NEW.access_token
       OR OLD.refresh_token IS DISTINCT FROM NEW.refresh_token
       OR OLD.api_key IS DISTINCT FROM NEW.api_key
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.refresh_at IS DISTINCT FROM NEW.refresh_at)
    EXECUTE FUNCTION connecthub_notify_invalidate('client', 'client_id');
CREATE TRIGGER credentials_invalidate_delete AFTER DELETE ON credentials FOR EACH ROW
    EXECUTE FUNCTION connecthub_notify_invalidate('client', 'client_id');

-- Service keys: a revocation (or a change of name or scopes), not the "last used" time.
CREATE TRIGGER api_keys_invalidate_update AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.scopes IS DISTINCT FROM NEW.scopes
       OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION connecthub_notify_invalidate('api_key', 'id');
CREATE TRIGGER api_keys_invalidate_delete AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION connecthub_notify_invalidate('api_key', 'id');
