-- The refresher at 100,000 connections (issue 18). Its claim walks credentials in
-- refresh_at order and stops after a batch, so it wants an index over exactly the rows
-- that can fall due: those with a refresh_at (API keys and tokens that never expire have
-- none). The small partial indexes answer the refresher's "when next" questions (a
-- backoff ending, a lease running out, a refresh in flight) without a scan of the table.
DROP INDEX credentials_refresh_at;
CREATE INDEX credentials_refresh_due ON credentials (refresh_at) WHERE refresh_at IS NOT NULL;
CREATE INDEX credentials_retry_after ON credentials (retry_after) WHERE retry_after IS NOT NULL;
CREATE INDEX credentials_lease_until ON credentials (refresh_lease_until)
    WHERE refresh_lease_until IS NOT NULL;
CREATE INDEX credentials_refresh_started ON credentials (refresh_started_at)
    WHERE refresh_started_at IS NOT NULL;
