-- Usage roll-ups, kept as materialised grouping sets in one table, so that every view of
-- the usage page reads a few hundred or thousand rows however many calls were made:
--   endpoint_hour, endpoint_day  per provider and endpoint (client_id = user_id = '')
--   client_hour,   client_day    per provider, client and owner (endpoint = '')
--   full_day                     per provider, endpoint, client and owner (for filters)
-- Latency is a histogram (le_N: calls that took at most N ms and more than the bound
-- before it) so percentiles survive. Hourly sets and raw rows are pruned after
-- USAGE_RETENTION_DAYS; daily sets stay.
CREATE TABLE api_usage_rollup (
    grouping_set TEXT NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 0,
    duration_ms_sum BIGINT NOT NULL DEFAULT 0,
    le_10 INTEGER NOT NULL DEFAULT 0,
    le_25 INTEGER NOT NULL DEFAULT 0,
    le_50 INTEGER NOT NULL DEFAULT 0,
    le_100 INTEGER NOT NULL DEFAULT 0,
    le_250 INTEGER NOT NULL DEFAULT 0,
    le_500 INTEGER NOT NULL DEFAULT 0,
    le_1000 INTEGER NOT NULL DEFAULT 0,
    le_2500 INTEGER NOT NULL DEFAULT 0,
    le_5000 INTEGER NOT NULL DEFAULT 0,
    le_10000 INTEGER NOT NULL DEFAULT 0,
    over_10000 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (grouping_set, starts_at, provider, endpoint, client_id, user_id)
);
CREATE INDEX api_usage_rollup_client ON api_usage_rollup (client_id, grouping_set, starts_at);
CREATE INDEX api_usage_rollup_user ON api_usage_rollup (user_id, grouping_set, starts_at);

INSERT INTO api_usage_rollup
SELECT 'endpoint_hour', strftime('%Y-%m-%d %H:00:00', at), provider, endpoint, '', '',
    COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN rate_limited THEN 1 ELSE 0 END),
    SUM(duration_ms),
    SUM(CASE WHEN duration_ms <= 10 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10 AND duration_ms <= 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 25 AND duration_ms <= 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 50 AND duration_ms <= 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 100 AND duration_ms <= 250 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 250 AND duration_ms <= 500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 500 AND duration_ms <= 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 1000 AND duration_ms <= 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 2500 AND duration_ms <= 5000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 5000 AND duration_ms <= 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10000 THEN 1 ELSE 0 END)
FROM api_usage
GROUP BY strftime('%Y-%m-%d %H:00:00', at), provider, endpoint;

INSERT INTO api_usage_rollup
SELECT 'endpoint_day', strftime('%Y-%m-%d 00:00:00', at), provider, endpoint, '', '',
    COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN rate_limited THEN 1 ELSE 0 END),
    SUM(duration_ms),
    SUM(CASE WHEN duration_ms <= 10 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10 AND duration_ms <= 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 25 AND duration_ms <= 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 50 AND duration_ms <= 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 100 AND duration_ms <= 250 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 250 AND duration_ms <= 500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 500 AND duration_ms <= 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 1000 AND duration_ms <= 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 2500 AND duration_ms <= 5000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 5000 AND duration_ms <= 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10000 THEN 1 ELSE 0 END)
FROM api_usage
GROUP BY strftime('%Y-%m-%d 00:00:00', at), provider, endpoint;

INSERT INTO api_usage_rollup
SELECT 'client_hour', strftime('%Y-%m-%d %H:00:00', at), provider, '', client_id, user_id,
    COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN rate_limited THEN 1 ELSE 0 END),
    SUM(duration_ms),
    SUM(CASE WHEN duration_ms <= 10 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10 AND duration_ms <= 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 25 AND duration_ms <= 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 50 AND duration_ms <= 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 100 AND duration_ms <= 250 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 250 AND duration_ms <= 500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 500 AND duration_ms <= 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 1000 AND duration_ms <= 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 2500 AND duration_ms <= 5000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 5000 AND duration_ms <= 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10000 THEN 1 ELSE 0 END)
FROM api_usage
GROUP BY strftime('%Y-%m-%d %H:00:00', at), provider, client_id, user_id;

INSERT INTO api_usage_rollup
SELECT 'client_day', strftime('%Y-%m-%d 00:00:00', at), provider, '', client_id, user_id,
    COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN rate_limited THEN 1 ELSE 0 END),
    SUM(duration_ms),
    SUM(CASE WHEN duration_ms <= 10 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10 AND duration_ms <= 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 25 AND duration_ms <= 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 50 AND duration_ms <= 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 100 AND duration_ms <= 250 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 250 AND duration_ms <= 500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 500 AND duration_ms <= 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 1000 AND duration_ms <= 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 2500 AND duration_ms <= 5000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 5000 AND duration_ms <= 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10000 THEN 1 ELSE 0 END)
FROM api_usage
GROUP BY strftime('%Y-%m-%d 00:00:00', at), provider, client_id, user_id;

INSERT INTO api_usage_rollup
SELECT 'full_day', strftime('%Y-%m-%d 00:00:00', at), provider, endpoint, client_id, user_id,
    COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN rate_limited THEN 1 ELSE 0 END),
    SUM(duration_ms),
    SUM(CASE WHEN duration_ms <= 10 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10 AND duration_ms <= 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 25 AND duration_ms <= 50 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 50 AND duration_ms <= 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 100 AND duration_ms <= 250 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 250 AND duration_ms <= 500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 500 AND duration_ms <= 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 1000 AND duration_ms <= 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 2500 AND duration_ms <= 5000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 5000 AND duration_ms <= 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration_ms > 10000 THEN 1 ELSE 0 END)
FROM api_usage
GROUP BY strftime('%Y-%m-%d 00:00:00', at), provider, endpoint, client_id, user_id;
