PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
-- HTTP Basic connections (auth_type 'basic'). SQLite cannot change a CHECK in place: the
-- table is rebuilt with the same columns and indexes.
CREATE TABLE clients_new (
    id TEXT PRIMARY KEY NOT NULL,
    owner_user_id TEXT NOT NULL REFERENCES users (id),
    provider TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'needs_reauth', 'error', 'disconnected')),
    auth_type TEXT NOT NULL CHECK (auth_type IN ('oauth2', 'api_key', 'client_credentials', 'basic')),
    tags TEXT NOT NULL,
    profile TEXT NOT NULL,
    scopes TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    connected_at TIMESTAMP NOT NULL,
    last_refreshed_at TIMESTAMP,
    last_used_at TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    search_text TEXT NOT NULL DEFAULT '',
    end_user_id TEXT REFERENCES end_users (id)
);
INSERT INTO clients_new SELECT id, owner_user_id, provider, provider_account_id, display_name, status, auth_type, tags, profile, scopes, is_default, connected_at, last_refreshed_at, last_used_at, last_error, created_at, updated_at, search_text, end_user_id FROM clients;
DROP TABLE clients;
ALTER TABLE clients_new RENAME TO clients;
CREATE INDEX clients_owner ON clients (owner_user_id, provider);
CREATE INDEX clients_updated_at ON clients (updated_at);
CREATE INDEX clients_status ON clients (status, updated_at);
CREATE INDEX clients_provider ON clients (provider, updated_at);
CREATE INDEX clients_display_name ON clients (display_name);
CREATE UNIQUE INDEX clients_account ON clients
    (provider, provider_account_id, owner_user_id, COALESCE(end_user_id, ''));
CREATE INDEX clients_end_user ON clients (end_user_id);
COMMIT;
PRAGMA foreign_keys = ON;
