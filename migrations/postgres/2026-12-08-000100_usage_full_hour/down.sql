-- One row per provider API call made through the proxy.
CREATE TABLE api_usage (
    id BIGSERIAL PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    status INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    rate_limited BOOLEAN NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX api_usage_at ON api_usage (at);
CREATE INDEX api_usage_client_at ON api_usage (client_id, at);
CREATE INDEX api_usage_provider_at ON api_usage (provider, at);
CREATE INDEX api_usage_user_at ON api_usage (user_id, at);
DELETE FROM api_usage_rollup WHERE grouping_set = 'full_hour';
