-- Where the team receives signed webhooks. secret and previous_secret are sealed with the
-- vault; the previous one still signs until previous_secret_until (rotation overlap).
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    key_id TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    failing_since TIMESTAMP,
    disabled_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- The outbox: each event is written in the transaction of the change it describes. body is
-- the exact JSON sent (the same bytes on every retry); id is the webhook-id.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_events_type_created ON webhook_events (event_type, created_at);
-- Each delivery attempt, for the endpoint's log and for replays.
CREATE TABLE webhook_attempts (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    at TIMESTAMP NOT NULL,
    status INTEGER,
    duration_ms INTEGER NOT NULL,
    succeeded BOOLEAN NOT NULL,
    error TEXT,
    response_excerpt TEXT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint_at ON webhook_attempts (endpoint_id, at);
-- Incoming provider webhooks, as received (after their signature was checked).
CREATE TABLE provider_webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    client_ids TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
