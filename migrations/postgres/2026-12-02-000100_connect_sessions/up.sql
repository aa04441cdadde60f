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
-- account per owner and end user.
ALTER TABLE clients ADD COLUMN end_user_id TEXT REFERENCES end_users (id);
ALTER TABLE clients DROP CONSTRAINT clients_provider_provider_account_id_owner_user_id_key;
CREATE UNIQUE INDEX clients_account ON clients
    (provider, provider_account_id, owner_user_id, COALESCE(end_user_id, ''));
CREATE INDEX clients_end_user ON clients (end_user_id);
