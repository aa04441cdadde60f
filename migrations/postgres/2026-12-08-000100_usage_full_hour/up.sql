-- Raw usage rows give way to one more roll-up set, full_hour (per hour, provider,
-- endpoint, client and owner), which answers the one view that read them: one client's or
-- one user's last 24 hours. A raw row per call cost a busy proxy an insert into the table
-- and four indexes for every call; a roll-up row costs one upsert per key and batch.
-- The raw rows still held become full_hour rows first, so those hours keep their figures.
INSERT INTO api_usage_rollup
SELECT 'full_hour', date_trunc('hour', at), provider, endpoint, client_id, user_id,
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
GROUP BY date_trunc('hour', at), provider, endpoint, client_id, user_id;

DROP TABLE api_usage;
