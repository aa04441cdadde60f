-- One pending OAuth authorization per row; the state itself is stored only as a hash.
CREATE TABLE oauth_states (
    id TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_binding TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    redirect_path TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    consumed_at TIMESTAMP
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- One row per connected provider account per owner: what the Clients page lists.
CREATE TABLE clients (
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
    UNIQUE (provider, provider_account_id, owner_user_id)
);
CREATE INDEX clients_owner ON clients (owner_user_id, provider);
CREATE INDEX clients_updated_at ON clients (updated_at);

-- Secrets live only here, sealed by the vault, so list pages never load them.
CREATE TABLE credentials (
    client_id TEXT PRIMARY KEY NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    access_token TEXT,
    refresh_token TEXT,
    api_key TEXT,
    token_type TEXT NOT NULL,
    expires_at TIMESTAMP,
    refresh_lease_until TIMESTAMP,
    refresh_failures INTEGER NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX credentials_key_id ON credentials (key_id);
CREATE INDEX credentials_expires_at ON credentials (expires_at);
