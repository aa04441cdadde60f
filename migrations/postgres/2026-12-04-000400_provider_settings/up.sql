-- Provider settings made on /admin/providers, laid over each provider's definition (NULL:
-- the definition's value stays); environment variables still win. client_secret is sealed
-- with the vault, bound to (provider_settings, name, client_secret). definition holds the
-- TOML [[provider]] table of a provider added on that page (NULL for built-in and file ones).
CREATE TABLE provider_settings (
    name TEXT PRIMARY KEY NOT NULL,
    enabled BOOLEAN,
    client_id TEXT,
    client_secret TEXT,
    scopes TEXT,
    authorize_params TEXT,
    definition TEXT,
    updated_at TIMESTAMP NOT NULL
);

-- Every instance reloads its providers when another one changes them (invalidation.rs).
CREATE TRIGGER provider_settings_invalidate AFTER INSERT OR UPDATE OR DELETE ON provider_settings
    FOR EACH ROW EXECUTE FUNCTION connecthub_notify_invalidate('providers', 'name');
