-- The last refresh attempts of each connection (at most 20 are kept per client), so "why
-- did this connection break" has an answer. Never a token: the provider's error code and
-- description only.
CREATE TABLE refresh_attempts (
    id BIGSERIAL PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    trigger_kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    error_code TEXT,
    error_description TEXT
);
CREATE INDEX refresh_attempts_client_id ON refresh_attempts (client_id, id);
