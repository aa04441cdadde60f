PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
-- The team's own end users (their ids, not connecthub logins): connect sessions and the
-- connections made through them belong to one of these.
CREATE TABLE end_users (
    id TEXT PRIMARY KEY NOT NULL,
    external_id TEXT NOT NULL UNIQUE,
    email TEXT,
    display_name TEXT,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
);

-- One link a team's backend asked for; the token itself is stored only as a SHA-256.
CREATE TABLE connect_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    end_user_id TEXT NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    owner_user_id TEXT NOT NULL REFERENCES users (id),
    api_key_id TEXT NOT NULL,
    allowed_providers TEXT NOT NULL,
    tags TEXT NOT NULL,
    success_url TEXT,
    error_url TEXT,
    allowed_origins TEXT NOT NULL,
    reconnect_client_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('open', 'completed', 'failed', 'expired')),
    completed_client_id TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX connect_sessions_end_user ON connect_sessions (end_user_id);
CREATE INDEX connect_sessions_created_at ON connect_sessions (created_at);

-- The hosted connect page's branding and the secret that signs its return URLs (sealed).
CREATE TABLE connect_settings (
    id INTEGER PRIMARY KEY NOT NULL,
    product_name TEXT NOT NULL,
    logo_url TEXT,
    accent_color TEXT NOT NULL,
    signing_secret TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- A connection made through a session belongs to its end user; one row per provider
-- account per owner and end user. SQLite keeps an inline UNIQUE for good, so the table
-- is rebuilt without it (same columns, same indexes).
CREATE TABLE clients_new (
    id TEXT PRIMARY KEY NOT NULL,
    owner_user_id TEXT NOT NULL REFERENCES users (id),
    provider TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'needs_reauth', 'error', 'disconnected')),
    auth_type TEXT NOT NULL CHECK (auth_type IN ('oauth2', 'api_key', 'client_credentials')),
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
INSERT INTO clients_new (id, owner_user_id, provider, provider_account_id, display_name, status, auth_type, tags, profile, scopes, is_default, connected_at, last_refreshed_at, last_used_at, last_error, created_at, updated_at, search_text) SELECT id, owner_user_id, provider, provider_account_id, display_name, status, auth_type, tags, profile, scopes, is_default, connected_at, last_refreshed_at, last_used_at, last_error, created_at, updated_at, search_text FROM clients;
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
